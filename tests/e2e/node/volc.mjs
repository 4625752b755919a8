// @volcengine/openapi (the official Volcengine Node SDK) calling convhub's IM actions through its
// generic Service class: no IM client ships with it, so each action is a createJSONAPI() function.
//
// Environment: CONVHUB_BASE_URL (http://127.0.0.1:PORT), CONVHUB_AK, CONVHUB_SK, CONVHUB_APP_ID.
// Prints one JSON line with what the SDK returned and what went over the wire.
import { Service } from '@volcengine/openapi';

import { required, run, wire } from './lib.mjs';

const VERSION = '2020-12-01';
const BEYOND_2_53 = 9007199254740993n; // 2**53 + 1: a JS number cannot hold it
const UNKNOWN_ID = 1n; // a valid conversation ID that nobody has

// The SDK serialises bodies with JSON.stringify and parses answers with JSON.parse, so an int64
// beyond 2**53 can be neither sent nor read as a number. Send it as a BigInt written out as raw
// JSON digits, and read it from the string twin the server sends with it (ConversationId).
// (JSON.rawJSON would do this directly, but Node 20 does not have it.)
const INT64 = '#int64#';
export function stringifyInt64(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${INT64}${v}` : v)).replace(
    new RegExp(`"${INT64}(-?\\d+)"`, 'g'),
    '$1',
  );
}

function imService(baseUrl, accessKeyId, secretKey) {
  const url = new URL(baseUrl);
  const service = new Service({
    serviceName: 'rtc',
    region: 'cn-north-1',
    host: url.host,
    protocol: url.protocol, // 'http:', with the colon: the SDK builds `${protocol}//${host}/`
    defaultVersion: VERSION,
    accessKeyId,
    secretKey,
  });
  const api = (action) => service.createJSONAPI(action, { Version: VERSION });
  return {
    create: api('CreateConversation'),
    modify: api('ModifyConversation'),
    batchGet: api('BatchGetConversations'),
  };
}

/** What a call came back with: the SDK resolves errors too, so look at ResponseMetadata.Error. */
async function outcome(promise) {
  try {
    const response = await promise;
    const error = response?.ResponseMetadata?.Error;
    return error
      ? { rejected: false, error, hasResult: 'Result' in response }
      : { rejected: false, result: response.Result };
  } catch (thrown) {
    return { rejected: true, thrown: String(thrown) };
  }
}

async function main() {
  const baseUrl = required('CONVHUB_BASE_URL');
  const ak = required('CONVHUB_AK');
  const sk = required('CONVHUB_SK');
  const appId = Number(required('CONVHUB_APP_ID'));
  const im = imService(baseUrl, ak, sk);

  // A group, sent as a plain object: the SDK JSON.stringify()s it and signs that.
  const group = await im.create({
    AppId: appId,
    OwnerUserId: 10001,
    ConversationCoreInfo: { ConversationType: 2, Name: 'node group 会话', Ext: { k: 'v' } },
  });
  const groupId = BigInt(group.Result.ConversationId); // exact; ConversationShortId is rounded
  const groupShortIdAsNumber = group.Result.ConversationShortId;

  // A single chat whose owner is beyond 2**53: the body is a string with the raw digits.
  const single = await im.create(
    stringifyInt64({
      AppId: appId,
      OwnerUserId: BEYOND_2_53,
      OtherUserId: 10002,
      ConversationCoreInfo: { ConversationType: 1, Name: 'node single' },
    }),
  );
  const singleId = BigInt(single.Result.ConversationId);

  // Rename the group by its exact ID, then read both back by their exact IDs.
  const modify = await outcome(
    im.modify(
      stringifyInt64({
        AppId: appId,
        ConversationCoreInfo: { ConversationShortId: groupId, Name: 'renamed by node' },
      }),
    ),
  );
  const batchGet = await outcome(
    im.batchGet(stringifyInt64({ AppId: appId, ConversationShortId: [groupId, singleId] })),
  );

  // The naive way: send back the number JSON.parse produced.
  const naiveModify = await outcome(
    im.modify({
      AppId: appId,
      ConversationCoreInfo: { ConversationShortId: groupShortIdAsNumber, Name: 'naive' },
    }),
  );

  // An error envelope, and a wrong secret key.
  const unknownModify = await outcome(
    im.modify(
      stringifyInt64({
        AppId: appId,
        ConversationCoreInfo: { ConversationShortId: UNKNOWN_ID, Name: 'x' },
      }),
    ),
  );
  const wrongSecret = await outcome(
    imService(baseUrl, ak, `${sk}x`).create({
      AppId: appId,
      OwnerUserId: 10001,
      ConversationCoreInfo: { ConversationType: 2 },
    }),
  );

  const infos = batchGet.result?.ConversationCoreInfos ?? [];
  return {
    group: {
      conversationId: group.Result.ConversationId,
      shortIdAsNumber: String(groupShortIdAsNumber),
      shortIdIsSafeInteger: Number.isSafeInteger(groupShortIdAsNumber),
      shortIdLostDigits: String(groupShortIdAsNumber) !== group.Result.ConversationId,
      exist: group.Result.Exist,
      name: group.Result.ConversationInfo.Name,
      ext: group.Result.ConversationInfo.Ext,
    },
    single: {
      conversationId: single.Result.ConversationId,
      exist: single.Result.Exist,
      conversationType: single.Result.ConversationInfo.ConversationType,
      ownerUserIdAsNumber: String(single.Result.ConversationInfo.OwnerUserId),
      ownerUserIdStr: single.Result.ConversationInfo.OwnerUserIdStr ?? null,
    },
    modify,
    batchGet: {
      ...batchGet,
      result: undefined,
      conversations: infos.map((info) => ({
        conversationId: info.ConversationId,
        name: info.Name,
        conversationType: info.ConversationType,
      })),
    },
    naiveModify,
    unknownModify,
    wrongSecret,
    wire,
  };
}

await run(main);
