// Vendored from openai/openai-node (https://github.com/openai/openai-node), commit
// 7b7d6ca71130d37ec09792c50056b47861f2eccf (version 7.5.0, 2026-08-21):
// tests/api-resources/chat/completions/completions.test.ts. Copyright OpenAI, Apache License 2.0
// (http://www.apache.org/licenses/LICENSE-2.0); the upstream notice follows.
// Changed here, and only here: the two *create* tests only (retrieve, update, list and delete are
// stored completions, which the mock does not serve); TypeScript under jest became this ES
// module under node:test (the test bodies and request bodies are upstream's, unchanged; jest's
// `expect` is the small shim below); the client's baseURL is `chatcompat mock --validation
// schema` started on a free port (upstream: a Prism mock at TEST_API_BASE_URL). The block after
// upstream's, marked as ours, sends the same requests to the default (strict) level.
// File generated from our OpenAPI spec by Castiron. See CONTRIBUTING.md for details.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import OpenAI from 'openai';

import { startMock } from './mock.mjs';

// jest's expect, as far as these tests use it.
function expect(actual) {
  return {
    toBe: (expected) => assert.equal(actual, expected),
    toBeInstanceOf: (type) => assert.ok(actual instanceof type),
    not: { toBeInstanceOf: (type) => assert.ok(!(actual instanceof type)) },
  };
}

const mock = await startMock('--validation', 'schema');
after(() => mock.stop());

// ours: the bodies upstream's tests send, kept for the strict block at the end
const sent = [];
const client = new OpenAI({
  apiKey: 'My API Key',
  adminAPIKey: 'My Admin API Key',
  baseURL: mock.baseURL,
  fetch: (url, init) => {
    sent.push(init.body);
    return fetch(url, init);
  },
});

describe('resource completions', () => {
  test('create: only required params', async () => {
    const responsePromise = client.chat.completions.create({
      messages: [{ content: 'string', role: 'developer' }],
      model: 'gpt-5.4',
    });
    const rawResponse = await responsePromise.asResponse();
    expect(rawResponse).toBeInstanceOf(Response);
    const response = await responsePromise;
    expect(response).not.toBeInstanceOf(Response);
    const dataAndResponse = await responsePromise.withResponse();
    expect(dataAndResponse.data).toBe(response);
    expect(dataAndResponse.response).toBe(rawResponse);
  });

  test('create: required and optional params', async () => {
    const response = await client.chat.completions.create({
      messages: [
        {
          content: 'string',
          role: 'developer',
          name: 'name',
        },
      ],
      model: 'gpt-5.4',
      audio: { format: 'wav', voice: 'alloy' },
      frequency_penalty: -2,
      function_call: 'none',
      functions: [
        {
          name: 'name',
          description: 'description',
          parameters: { foo: 'bar' },
        },
      ],
      logit_bias: { foo: 0 },
      logprobs: true,
      max_completion_tokens: 0,
      max_tokens: 0,
      metadata: { foo: 'string' },
      modalities: ['text'],
      moderation: {
        model: 'model',
        policy: {
          input: { mode: 'score' },
          output: { mode: 'score' },
        },
      },
      n: 1,
      parallel_tool_calls: true,
      prediction: { content: 'string', type: 'content' },
      presence_penalty: -2,
      prompt_cache_key: 'prompt-cache-key-1234',
      prompt_cache_options: { mode: 'implicit', ttl: '30m' },
      prompt_cache_retention: 'in_memory',
      reasoning_effort: 'none',
      response_format: { type: 'text' },
      safety_identifier: 'safety-identifier-1234',
      seed: -9007199254740991,
      service_tier: 'auto',
      stop: '\n',
      store: true,
      stream: false,
      stream_options: { include_obfuscation: true, include_usage: true },
      temperature: 1,
      tool_choice: 'none',
      tools: [
        {
          function: {
            name: 'name',
            description: 'description',
            parameters: { foo: 'bar' },
            strict: true,
          },
          type: 'function',
        },
      ],
      top_logprobs: 0,
      top_p: 1,
      user: 'user-1234',
      verbosity: 'low',
      web_search_options: {
        search_context_size: 'low',
        user_location: {
          approximate: {
            city: 'city',
            country: 'country',
            region: 'region',
            timezone: 'timezone',
          },
          type: 'approximate',
        },
      },
    });
  });
});

// ours (not upstream's): the all-params request above, as the client sent it, at the default
// (strict) level: refused with OpenAI's 400s, one rule at a time (each named by its param).
describe('the same request at the default validation level (strict)', () => {
  test('is refused rule by rule', async () => {
    const strict = await startMock();
    try {
      const body = JSON.parse(sent.find((text) => JSON.parse(text).max_tokens === 0));
      const strictClient = new OpenAI({ apiKey: 'My API Key', baseURL: strict.baseURL });
      await assert.rejects(
        strictClient.chat.completions.create(body),
        (error) => error instanceof OpenAI.BadRequestError && error.param === 'stream_options',
      );
      const refused = [];
      for (;;) {
        const answer = await fetch(`${strict.baseURL}/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (answer.status === 200) break;
        assert.equal(answer.status, 400);
        const { error } = await answer.json();
        refused.push([error.param, error.code]);
        delete body[error.param];
      }
      assert.deepEqual(refused, [
        ['stream_options', null],
        ['max_tokens', 'integer_below_min_value'],
        ['max_completion_tokens', 'integer_below_min_value'],
        ['logit_bias', null],
      ]);
    } finally {
      await strict.stop();
    }
  });
});
