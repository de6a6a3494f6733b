// Drives the real openclaw-node 0.14 client (signs v2 device payloads) against a gateway:
// connect with the shared token (device gets paired, token persisted in the identity file),
// disconnect, reconnect with no shared token (the persisted device token authenticates), call methods.
// Usage: node ocnode-pair.mjs <openclaw-node module path> <url> <token> <identity file>
const [modulePath, url, token, identityPath] = process.argv.slice(2);
const { OpenClawClient } = await import(modulePath);
const out = {};

const first = new OpenClawClient({ url, token, deviceIdentityPath: identityPath, autoReconnect: false });
first.on("error", () => {});
const hello1 = await first.connect();
out.firstAuth = hello1.auth;
out.health = await first.health();
await first.disconnect();

const second = new OpenClawClient({ url, deviceIdentityPath: identityPath, autoReconnect: false });
second.on("error", () => {});
const hello2 = await second.connect();
out.secondAuth = hello2.auth;
out.status = (await second.request("status", {})).payload;
await second.disconnect();

console.log(JSON.stringify(out));
process.exit(0);
