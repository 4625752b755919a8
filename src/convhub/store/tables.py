"""SQLAlchemy Core tables. Migrations in ``migrations/versions`` must match these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# On SQLite only "INTEGER PRIMARY KEY" makes the key the rowid itself; "BIGINT PRIMARY KEY" adds
# a second index that every insert and lookup pays for. SQLite's INTEGER is 64-bit anyway.
Int64Key = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

node_leases = Table(
    "node_leases",
    metadata,
    Column("node", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(128), nullable=False),
    Column("heartbeat", BigInteger, nullable=False),
)

# A row per process (by ID node), raised by every transaction of its writer, and on PostgreSQL
# row -1, raised by other changes of conversations: readers tell from them whether anyone but
# their own process's writer changed the database (see store/clock.py).
write_clock = Table(
    "write_clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(128), nullable=False, unique=True),
    Column("status", SmallInteger, nullable=False),
    Column("create_time", BigInteger, nullable=False),
)

apps = Table(
    "apps",
    metadata,
    Column("app_id", Integer, primary_key=True, autoincrement=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("create_time", BigInteger, nullable=False),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key", String(64), primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False, index=True),
    # HMAC verification needs the secret itself, so it cannot be stored as a hash.
    Column("secret_key", String(128), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("create_time", BigInteger, nullable=False),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Int64Key, autoincrement=False),
    Column("app_id", Integer, nullable=False),
    Column("inbox_type", Integer, nullable=False),
    Column("type", SmallInteger, nullable=False),
    Column("idempotency_key", String(320), nullable=True),
    Column("name", Text, nullable=False),
    Column("avatar_url", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("notice", Text, nullable=False),
    Column("ext", Text, nullable=False),
    Column("owner_user", String(128), nullable=False),
    Column("creator_user", String(128), nullable=False),
    Column("other_user", String(128), nullable=True),
    Column("status", SmallInteger, nullable=False),
    Column("member_count", Integer, nullable=False),
    Column("online_count", Integer, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("modify_time", BigInteger, nullable=False),
    Column("bot_id", String(128), nullable=False, server_default=""),
    Column("connector_id", String(128), nullable=False, server_default=""),
    Column("section_id", BigInteger, nullable=False, server_default="0"),
    Column("last_message_index", BigInteger, nullable=False, server_default="0"),
    Column("last_join_seq", BigInteger, nullable=False, server_default="0"),
    # Orders a user's conversations by recent activity: an ID minted at creation and again at
    # each message, so that it is unique and a cursor over it visits each conversation once.
    Column("activity_key", BigInteger, nullable=False, server_default="0"),
    # Raised by every UPDATE of the row: a reader that kept a row at version v may use it for as
    # long as the stored version is still v (see repositories/conversations.py).
    Column("version", BigInteger, nullable=False, server_default="0"),
    # On PostgreSQL the key carries the version: a reader asks for the versions of what it kept
    # (BatchGet: 100 at a time) and PostgreSQL answers from the index, without the table's pages
    # (at 10 million rows they were half its time). SQLite's key is the rowid, in the row.
    PrimaryKeyConstraint("id", postgresql_include=["version"]),
    UniqueConstraint(
        "app_id", "inbox_type", "idempotency_key", name="uq_conversations_idempotency"
    ),
    Index("ix_conversations_creator", "app_id", "creator_user", "id"),
)

participants = Table(
    "participants",
    metadata,
    Column("conversation_id", BigInteger, primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("role", SmallInteger, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("operator", String(128), nullable=False),
    Column("create_time", BigInteger, nullable=False),
    # The conversation's app, and whether it counts toward the user's limit of groups (a
    # Volcengine group does; a Coze conversation on a connector does not), copied here: a user's
    # conversations and groups are then read from one index, without visiting every conversation.
    Column("app_id", Integer, nullable=False, server_default="0"),
    Column("in_group_limit", SmallInteger, nullable=False, server_default="0"),
    Column("nick_name", Text, nullable=False, server_default=""),
    Column("level", Integer, nullable=False, server_default="0"),
    Column("ext", Text, nullable=False, server_default="{}"),
    Column("block_time", BigInteger, nullable=False, server_default="0"),
    # Order of joining within the conversation (a rejoin takes a new one): Scan's cursor.
    Column("join_seq", BigInteger, nullable=False, server_default="0"),
    # Joined with Barrier: messages up to this index are history it does not see.
    Column("history_floor", BigInteger, nullable=False, server_default="0"),
    Index(
        "ix_participants_user",
        "app_id",
        "user_id",
        "status",
        "in_group_limit",
        "conversation_id",
    ),
    Index("ix_participants_join", "conversation_id", "status", "join_seq"),
)

conversation_settings = Table(
    "conversation_settings",
    metadata,
    Column("conversation_id", BigInteger, primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("is_mute", SmallInteger, nullable=False),
    Column("stick_top_time", BigInteger, nullable=False),
    Column("favorite_time", BigInteger, nullable=False),
    Column("ext", Text, nullable=False),
    Column("read_index", BigInteger, nullable=False),
)

conversation_marks = Table(
    "conversation_marks",
    metadata,
    Column("conversation_id", BigInteger, primary_key=True),
    Column("mark_type", String(128), primary_key=True),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Int64Key, primary_key=True, autoincrement=False),
    Column("conversation_id", BigInteger, nullable=False),
    Column("message_index", BigInteger, nullable=False),
    Column("sender", String(128), nullable=False),
    Column("msg_type", Integer, nullable=False),
    Column("content", Text, nullable=False),
    Column("ext", Text, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("client_msg_id", String(128), nullable=True),
    Column("mentioned_users", Text, nullable=False),
    Column("visible_users", Text, nullable=False),
    Column("invisible_users", Text, nullable=False),
    Column("ref_message_id", BigInteger, nullable=True),
    Column("ref_hint", Text, nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("section_id", BigInteger, nullable=False),
    Column("role", String(16), nullable=False),
    Column("type", String(32), nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("bot_id", String(128), nullable=False),
    Column("chat_id", String(128), nullable=False),
    # Raised by every UPDATE of the row, as a conversation's is: readers keep messages by version.
    Column("version", BigInteger, nullable=False, server_default="0"),
    Index("ix_messages_conversation", "conversation_id", "id"),
    UniqueConstraint("conversation_id", "message_index", name="uq_messages_index"),
    UniqueConstraint("conversation_id", "client_msg_id", name="uq_messages_client_msg_id"),
)

# One member's deletes (Volcengine DeleteMessage): the message is gone for that member only.
message_hides = Table(
    "message_hides",
    metadata,
    Column("message_id", BigInteger, primary_key=True),
    Column("user_id", String(128), primary_key=True),
)

message_feedback = Table(
    "message_feedback",
    metadata,
    Column("message_id", BigInteger, primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("feedback_type", String(16), nullable=False),
    Column("reason_types", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    # SHA-256 of the token text: the token itself is shown once and never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("app_id", Integer, ForeignKey("apps.app_id"), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("permissions", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("expire_time", BigInteger, nullable=True),
    Column("revoked", SmallInteger, nullable=False),
)
