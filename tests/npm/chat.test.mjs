// The official openai npm client against the mock: answers, streams, tool calls, models.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import OpenAI from "openai";

import { startMock } from "./mock.mjs";

const MESSAGES = [
  { role: "system", content: "Act like you are a helpful assistant." },
  { role: "user", content: "Hi there!" },
];
const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city.",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { enum: ["celsius", "fahrenheit"] } },
      required: ["city", "unit"],
    },
  },
};

describe("chat completions", () => {
  let mock;
  let client;
  before(async () => {
    mock = await startMock();
    client = new OpenAI({ baseURL: mock.baseURL, apiKey: "k", maxRetries: 0, timeout: 10_000 });
  });
  after(async () => {
    await mock?.stop();
  });

  test("a non-stream answer is the seed answer", async () => {
    const answer = await client.chat.completions.create({
      model: "meta-llama/llama-3.3-70b-instruct",
      messages: MESSAGES,
    });
    assert.equal(answer.object, "chat.completion");
    assert.equal(answer.model, "meta-llama/llama-3.3-70b-instruct");
    assert.match(answer.id, /^chatcmpl-/);
    assert.equal(answer.choices[0].message.role, "assistant");
    assert.match(answer.choices[0].message.content, /^Hello! It's nice to meet you\./);
    assert.equal(answer.choices[0].finish_reason, "stop");
    assert.equal(answer.usage.total_tokens, answer.usage.prompt_tokens + answer.usage.completion_tokens);
  });

  test("a stream read with the async iterator says the non-stream text", async () => {
    const stream = await client.chat.completions.create({
      model: "gpt-4o",
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const answer = await client.chat.completions.create({ model: "gpt-4o", messages: MESSAGES });
    const content = chunks.flatMap((c) => c.choices.map((choice) => choice.delta.content ?? ""));
    assert.equal(content.join(""), answer.choices[0].message.content);
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
    assert.deepEqual(chunks.at(-2).choices.map((c) => c.finish_reason), ["stop"]);
    assert.deepEqual(chunks.at(-1).choices, []); // include_usage: the usage chunk comes last
    assert.ok(chunks.at(-1).usage.completion_tokens > 0);
  });

  test("the stream helper accumulates a tool call", async () => {
    const runner = client.chat.completions.stream({
      model: "gpt-4o",
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      tools: [WEATHER_TOOL],
    });
    const done = [];
    runner.on("tool_calls.function.arguments.done", (event) => done.push(event));
    const final = await runner.finalChatCompletion();
    const [call] = final.choices[0].message.tool_calls;
    assert.equal(final.choices[0].finish_reason, "tool_calls");
    assert.equal(call.type, "function");
    assert.match(call.id, /\S/);
    assert.equal(call.function.name, "get_weather");
    const args = JSON.parse(call.function.arguments);
    assert.deepEqual(Object.keys(args).sort(), ["city", "unit"]);
    assert.equal(args.unit, "celsius");
    assert.equal(done.length, 1);
    assert.equal(done[0].name, "get_weather");
    assert.deepEqual(JSON.parse(done[0].arguments), args);
  });

  test("a named tool_choice gets that tool, non-stream too", async () => {
    const other = { type: "function", function: { name: "noop", parameters: { type: "object" } } };
    const answer = await client.chat.completions.create({
      model: "gpt-4o",
      messages: MESSAGES,
      tools: [other, WEATHER_TOOL],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    assert.equal(answer.choices[0].message.tool_calls[0].function.name, "get_weather");
  });

  test("models are listed and retrieved", async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.deepEqual(ids, ["meta-llama/llama-3.3-70b-instruct"]);
    const model = await client.models.retrieve("meta-llama/llama-3.3-70b-instruct");
    assert.equal(model.object, "model");
    assert.equal(typeof model.created, "number");
  });
});
