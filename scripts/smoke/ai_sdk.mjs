// The Vercel AI SDK against tollway: generateText and streamText on the default provider
// (openai("demo"): the Responses API) and on openai.chat("demo") (chat completions, the control).
// env: SMOKE_NODE_DIR (where ai and @ai-sdk/openai are installed), SMOKE_BASE, SMOKE_KEY, SMOKE_RESULTS
import { appendFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(`${process.env.SMOKE_NODE_DIR}/package.json`);
const { generateText, streamText } = require("ai");
const { createOpenAI } = require("@ai-sdk/openai");
const prompt = "Say hello in five words.";

// Each case has its own base URL, so the logging proxy knows which case sent what.
const model = (name, control) => {
  const openai = createOpenAI({ baseURL: `${process.env.SMOKE_BASE}/${name}/v1`, apiKey: process.env.SMOKE_KEY });
  return control ? openai.chat("demo") : openai("demo");
};

async function generate(name, control) {
  const result = await generateText({ model: model(name, control), prompt, maxRetries: 0 });
  return { text: result.text, usage: result.usage, providerMetadata: result.providerMetadata,
           costHeader: result.response.headers?.["x-request-cost"] };
}

// The first "cost" anywhere in a value (tollway puts it in the usage object).
const findCost = (v) => v && typeof v === "object"
  ? ("cost" in v ? v.cost : Object.values(v).map(findCost).find((c) => c !== undefined)) : undefined;

async function stream(name, control) {
  const result = streamText({ model: model(name, control), prompt, maxRetries: 0, includeRawChunks: true, onError() {} });
  let text = "", rawCost;
  for await (const part of result.fullStream) {
    if (part.type === "text-delta") text += part.text;
    if (part.type === "raw") rawCost ??= findCost(part.rawValue);  // the events as the SDK received them
    if (part.type === "error") throw part.error;
  }
  return { text, usage: await result.usage, providerMetadata: await result.providerMetadata, rawCost };
}

const cases = [
  ["ai-sdk responses generateText", false, generate],
  ["ai-sdk responses streamText", false, stream],
  ["ai-sdk chat generateText", true, generate],
  ["ai-sdk chat streamText", true, stream],
];
for (const [label, control, run] of cases) {
  const name = label.replaceAll(" ", "-");
  const row = { case: name, control };
  try {
    const seen = await run(name, control);
    const u = seen.usage ?? {};
    Object.assign(row, {
      ok: Boolean(seen.text) && u.inputTokens > 0 && u.outputTokens > 0,
      text: seen.text,
      tokens: `${u.inputTokens}/${u.outputTokens}`,
      cost: u.raw?.cost ?? seen.costHeader ?? seen.rawCost ?? null,
    });
    console.log(`${row.ok ? "PASS" : "FAIL"} ${label}: ${JSON.stringify(seen.text)}`);
    console.log(`  usage: ${JSON.stringify(seen.usage)}`);
    console.log(`  providerMetadata: ${JSON.stringify(seen.providerMetadata)}`);
  } catch (error) {
    // APICallError carries what was sent and what came back.
    Object.assign(row, { ok: false, status: error.statusCode ?? null, error: String(error.message).slice(0, 300) });
    console.log(`FAIL ${label}: ${error.name}: ${error.message}`);
    if (error.url) console.log(`  ${error.statusCode} from ${error.url}`);
    if (error.requestBodyValues) console.log(`  sent: ${JSON.stringify(error.requestBodyValues)}`);
    if (error.responseBody) console.log(`  got: ${error.responseBody}`);
  }
  appendFileSync(process.env.SMOKE_RESULTS, JSON.stringify(row) + "\n");
}
