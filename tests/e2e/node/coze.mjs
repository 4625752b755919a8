// @coze/api (the official Coze Node SDK) driving convhub's Coze conversation API.
//
// Environment: CONVHUB_BASE_URL (http://127.0.0.1:PORT), CONVHUB_COZE_TOKEN, CONVHUB_BOT_ID.
// Prints one JSON line with what the SDK returned.
//
// conversations.update and conversations.delete are not methods of @coze/api 1.3.9 (cozepy has
// them); this script calls those two endpoints through the client's own put()/delete(), which
// carry the same token, base URL and error handling as every SDK method.
import { CozeAPI } from '@coze/api';

import { required, run, wire } from './lib.mjs';

/** The error an SDK call threw, as the fields a caller would look at. */
async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return {
      name: error.name,
      className: error.constructor?.name,
      code: error.code ?? null,
      status: error.status ?? null,
      msg: error.msg ?? null,
      logid: error.logid ?? null,
      message: error.message,
    };
  }
}

const types = (object) =>
  Object.fromEntries(Object.entries(object ?? {}).map(([key, value]) => [key, typeof value]));

async function main() {
  const baseURL = required('CONVHUB_BASE_URL');
  const token = required('CONVHUB_COZE_TOKEN');
  const botId = required('CONVHUB_BOT_ID');
  const coze = new CozeAPI({ token, baseURL });
  const metaData = { topic: 'support', 'lang 语言': '中文 ✓' };

  // name is not in CreateConversationReq's type, but the SDK sends the object as given.
  const created = await coze.conversations.create({
    bot_id: botId,
    name: 'node chat',
    meta_data: metaData,
  });
  const id = created.id;
  const retrieved = await coze.conversations.retrieve(id);
  const updated = await coze.put(`/v1/conversations/${id}`, { name: 'renamed by node' });
  const afterUpdate = await coze.conversations.retrieve(id);
  const listed = await coze.conversations.list({ bot_id: botId, page_num: 1, page_size: 20 });

  const first = await coze.conversations.messages.create(id, {
    role: 'user',
    content: 'hello from node',
    content_type: 'text',
    meta_data: { n: '1' },
  });
  const second = await coze.conversations.messages.create(id, {
    role: 'assistant',
    content: 'hi, node',
    content_type: 'text',
    meta_data: {},
  });
  const messages = await coze.conversations.messages.list(id, { order: 'asc', limit: 20 });
  const edited = await coze.conversations.messages.update(id, first.id, {
    content: 'edited by node',
    content_type: 'text',
  });

  const cleared = await coze.conversations.clear(id);
  const afterClear = await coze.conversations.retrieve(id);
  const afterClearMessages = await coze.conversations.messages.list(id, { order: 'asc' });

  const deleted = await coze.delete(`/v1/conversations/${id}`);
  const afterDelete = await failure(coze.conversations.retrieve(id));

  const badToken = await failure(
    new CozeAPI({ token: 'pat_not_a_token', baseURL }).conversations.list({ bot_id: botId }),
  );

  return {
    created: { ...created, types: types(created) },
    retrieved,
    updated: { code: updated.code, data: updated.data },
    afterUpdate,
    listed: {
      has_more: listed.has_more,
      conversations: listed.conversations.map((c) => ({ id: c.id, name: c.name })),
    },
    messages: {
      created: [first, second].map((m) => ({ ...m, types: types(m) })),
      list: {
        ids: messages.data.map((m) => m.id),
        contents: messages.data.map((m) => m.content),
        roles: messages.data.map((m) => m.role),
        first_id: messages.first_id,
        last_id: messages.last_id,
        has_more: messages.has_more,
      },
      edited: { id: edited?.id, content: edited?.content },
    },
    cleared,
    afterClear: { last_section_id: afterClear.last_section_id },
    afterClearMessages: { ids: afterClearMessages.data.map((m) => m.id) },
    deleted: { code: deleted.code },
    afterDelete,
    badToken,
    wire,
  };
}

await run(main);
