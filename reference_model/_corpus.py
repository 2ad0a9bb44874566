"""The small embedded text the tokenizer merges and the model's weights are fitted on.

Short assistant-style replies, one per line; the model sees each as an assistant turn that ends
with ``<|eot_id|>``, so it learns to write plain printable English and to stop now and then.
"""

from __future__ import annotations

__all__ = ["REPLIES"]

REPLIES: tuple[str, ...] = (
    "Hello! How can I help you today?",
    "Sure, here is a short answer.",
    "The capital of France is Paris.",
    "I think the answer is 42.",
    "Yes, that is correct.",
    "No, that is not right. The sum of 2 and 2 is 4.",
    "Here is a list: apples, pears, and plums.",
    "The weather today is sunny with a light wind.",
    "Thank you for your question. I am glad to help.",
    "A test suite checks that the server follows the API.",
    "The model reads the prompt and writes one token at a time.",
    "Each token is chosen from the distribution over the vocabulary.",
    "Temperature makes the distribution sharper or flatter.",
    "Top k keeps the k most likely tokens and drops the rest.",
    "Top p keeps the smallest set of tokens whose mass reaches p.",
    "The stop string is not part of the returned text.",
    "It is a small model, so the text may not make much sense.",
    "I do not know the answer to that question.",
    "Let me think about it. The result is 7.",
    "The quick brown fox jumps over the lazy dog.",
    "Good morning! It is nice to meet you.",
    "The file is saved. You can open it now.",
    "Please try again later.",
    "This is a simple example of a chat reply.",
    "The function returns the number of items in the list.",
    "OK. I will keep it short.",
    "There are 3 steps: read, think, and write.",
    "The time is 10:30 and the date is 2024-07-26.",
    "I can call a tool to get the weather in Paris.",
    "The tool returned a result: 21 degrees and clear skies.",
    "Is there anything else I can do for you?",
    "Goodbye, and have a nice day!",
    "The answer is yes.",
    "The answer is no.",
    "That is a good question. Here is what I know.",
    "In short, the test passed.",
    "The server sent the reply as a stream of small chunks.",
    "Every chunk carries a delta with a bit of new text.",
    "The last chunk has the finish reason and the usage.",
    "One, two, three, four, five.",
)
