"""One repository per aggregate over a ``Session``; ``unit_of_work.py`` puts them together."""
