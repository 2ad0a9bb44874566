// Injected faults (the X-Chatcompat-Fault header) against the openai npm client: error classes,
// retries that honour retry-after-ms, and streams broken midway.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import OpenAI from "openai";

import { startMock } from "./mock.mjs";

const REQUEST = { model: "m", messages: [{ role: "user", content: "Hi there!" }] };

// Request options injecting the fault `spec` (a fresh fail-first key per call).
function fault(spec) {
  return { headers: { "X-Chatcompat-Fault": spec.replace("KEY", randomUUID()) } };
}

describe("injected faults", () => {
  let mock;
  let client;
  before(async () => {
    mock = await startMock();
    client = new OpenAI({ baseURL: mock.baseURL, apiKey: "k", maxRetries: 0 });
  });
  after(async () => {
    await mock?.stop();
  });

  test("429 is a RateLimitError carrying retry-after-ms", async () => {
    const created = client.chat.completions.create(REQUEST, fault("status=429;retry-after-ms=50"));
    await assert.rejects(created, (error) => {
      assert.ok(error instanceof OpenAI.RateLimitError);
      assert.equal(error.status, 429);
      assert.equal(error.code, "rate_limit_exceeded");
      assert.equal(error.headers.get("retry-after-ms"), "50");
      return true;
    });
  });

  test("500 and 503 are InternalServerErrors", async () => {
    for (const status of [500, 503]) {
      const created = client.chat.completions.create(REQUEST, fault(`status=${status}`));
      await assert.rejects(created, (error) => {
        assert.ok(error instanceof OpenAI.InternalServerError);
        assert.equal(error.status, status);
        return true;
      });
    }
  });

  test("retries wait retry-after-ms, not the default backoff, then succeed", async () => {
    const retrying = client.withOptions({ maxRetries: 2 });
    const started = performance.now();
    const spec = "fail-first=2;status=429;retry-after-ms=50;key=KEY";
    const answer = await retrying.chat.completions.create(REQUEST, fault(spec));
    const elapsed = performance.now() - started;
    assert.equal(answer.object, "chat.completion");
    assert.ok(elapsed >= 100, `two retries after 50 ms each took ${elapsed} ms`);
    // The default backoff waits at least 0.375 s, then 0.75 s.
    assert.ok(elapsed < 1000, `retries took ${elapsed} ms: retry-after-ms was not honoured`);
  });

  test("a 503 is retried until the fault stops", async () => {
    const retrying = client.withOptions({ maxRetries: 1 });
    const spec = "fail-first=1;status=503;retry-after-ms=10;key=KEY";
    const answer = await retrying.chat.completions.create(REQUEST, fault(spec));
    assert.equal(answer.choices[0].finish_reason, "stop");
  });

  test("too few retries give the last error", async () => {
    const retrying = client.withOptions({ maxRetries: 1 });
    const spec = "fail-first=3;status=429;retry-after-ms=10;key=KEY";
    await assert.rejects(retrying.chat.completions.create(REQUEST, fault(spec)), OpenAI.RateLimitError);
  });

  test("an error event mid-stream is thrown as an APIError", async () => {
    const stream = await client.chat.completions.create({ ...REQUEST, stream: true }, fault("error-after=2"));
    const chunks = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) chunks.push(chunk);
      })(),
      OpenAI.APIError,
    );
    assert.equal(chunks.length, 2);
  });

  test("a stream cut midway rejects the iteration", async () => {
    const stream = await client.chat.completions.create({ ...REQUEST, stream: true }, fault("disconnect-after=3"));
    const chunks = [];
    await assert.rejects(async () => {
      for await (const chunk of stream) chunks.push(chunk);
    });
    assert.equal(chunks.length, 3);
  });
});
