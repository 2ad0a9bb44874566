// Error answers of the mock become the openai npm client's error classes.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import OpenAI from "openai";

import { startMock } from "./mock.mjs";

const MESSAGES = [{ role: "user", content: "Hi there!" }];

describe("error statuses", () => {
  let mock;
  let client;
  before(async () => {
    mock = await startMock("--api-key", "sk-test", "--model", "served-model");
    client = new OpenAI({ baseURL: mock.baseURL, apiKey: "sk-test", maxRetries: 0 });
  });
  after(async () => {
    await mock?.stop();
  });

  test("400 is a BadRequestError naming the parameter", async () => {
    const request = { model: "served-model", messages: MESSAGES, temperature: 3 };
    await assert.rejects(client.chat.completions.create(request), (error) => {
      assert.ok(error instanceof OpenAI.BadRequestError);
      assert.equal(error.status, 400);
      assert.equal(error.type, "invalid_request_error");
      assert.equal(error.param, "temperature");
      assert.match(error.requestID, /^req_/);
      return true;
    });
  });

  test("401 is an AuthenticationError", async () => {
    const wrong = new OpenAI({ baseURL: mock.baseURL, apiKey: "sk-wrong", maxRetries: 0 });
    await assert.rejects(wrong.chat.completions.create({ model: "served-model", messages: MESSAGES }), (error) => {
      assert.ok(error instanceof OpenAI.AuthenticationError);
      assert.equal(error.status, 401);
      assert.equal(error.code, "invalid_api_key");
      return true;
    });
  });

  test("404 for a model not served is a NotFoundError", async () => {
    await assert.rejects(client.chat.completions.create({ model: "other", messages: MESSAGES }), (error) => {
      assert.ok(error instanceof OpenAI.NotFoundError);
      assert.equal(error.status, 404);
      assert.equal(error.code, "model_not_found");
      return true;
    });
  });

  test("404 for an unknown model id is a NotFoundError", async () => {
    await assert.rejects(client.models.retrieve("no-such-model"), OpenAI.NotFoundError);
  });

  test("a stream refused with 400 raises before the first chunk", async () => {
    const request = { model: "served-model", messages: MESSAGES, stream: true, max_tokens: 0 };
    await assert.rejects(client.chat.completions.create(request), OpenAI.BadRequestError);
  });
});
