// Drives Homarus's OpenAI-compatible API with the official `openai` npm client.
// Usage: node openai-client.mjs <module dir> <base url> <token>; prints one JSON document.
import { createRequire } from "node:module";
const [dir, base, token] = process.argv.slice(2);
const require = createRequire(dir + "/");
const OpenAI = require("openai").default ?? require("openai");
const client = new OpenAI({ baseURL: base + "/v1", apiKey: token, maxRetries: 0, timeout: 30000 });
const out = {};
const models = await client.models.list();
out.models = models.data.map((m) => m.id);
const chat = await client.chat.completions.create({ model: "openclaw", messages: [{ role: "user", content: "first question" }] });
out.chat = chat.choices[0].message.content;
let streamed = "";
const stream = await client.chat.completions.create({ model: "openclaw/main", stream: true, messages: [{ role: "user", content: "second question" }] });
for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";
out.chatStream = streamed;
const resp = await client.responses.create({ model: "openclaw/main", input: "third question", user: "node-client" });
out.response = resp.output_text;
out.responseStatus = resp.status;
const next = await client.responses.create({ model: "openclaw/main", input: "fourth question", previous_response_id: resp.id });
out.followUp = next.output_text;
const events = [];
let text = "";
const rs = await client.responses.create({ model: "openclaw/main", input: "fifth question", stream: true });
for await (const ev of rs) {
  events.push(ev.type);
  if (ev.type === "response.output_text.delta") text += ev.delta;
}
out.responseStream = text;
out.responseEvents = events;
try {
  await client.chat.completions.create({ model: "nope/agent", messages: [{ role: "user", content: "x" }] });
} catch (e) {
  out.badModel = { status: e.status, message: e.error?.message ?? e.message };
}
console.log(JSON.stringify(out));
