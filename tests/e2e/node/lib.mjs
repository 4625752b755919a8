// Shared by the scenario scripts: parameters from the environment, a record of every HTTP request
// the SDKs send (read from Node's own http client, so the SDKs are used unmodified), and the one
// JSON line each script prints.
import diagnosticsChannel from 'node:diagnostics_channel';

/** The value of an environment variable the script cannot run without. */
export function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`environment variable ${name} is required`);
  }
  return value;
}

/** Every request that leaves this process: method, path and the headers that matter here. */
export const wire = [];
diagnosticsChannel.subscribe('http.client.request.start', ({ request }) => {
  const authorization = String(request.getHeader('authorization') ?? '');
  const signed = /SignedHeaders=([^,\s]+)/.exec(authorization);
  wire.push({
    method: request.method,
    path: request.path,
    host: request.getHeader('host') ?? null,
    contentType: request.getHeader('content-type') ?? null,
    userAgent: request.getHeader('user-agent') ?? null,
    authScheme: authorization.split(' ')[0] || null,
    signedHeaders: signed ? signed[1] : null,
    headerNames: request.getHeaderNames().sort(),
  });
});

/** Print one JSON line; BigInt values (there should be none) become strings. */
export function report(observed) {
  process.stdout.write(
    `${JSON.stringify(observed, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`,
  );
}

/** Run ``main`` and print what it returns; on an unexpected failure print that and exit 1. */
export async function run(main) {
  try {
    report(await main());
  } catch (error) {
    report({ fatal: String(error?.stack ?? error), wire });
    process.exitCode = 1;
  }
}
