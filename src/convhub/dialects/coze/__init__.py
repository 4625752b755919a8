"""The Coze dialect: the Coze conversation and message API, as cozepy 0.20.0 calls it."""
