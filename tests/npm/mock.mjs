// Start the chatcompat mock in a child process for node tests, and stop it.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

const PYTHON = process.env.CHATCOMPAT_PYTHON || "python3";
const START_TIMEOUT_MS = 30_000;

// `python -m mockserver --port 0 ...args`; resolves to { baseURL, stop, log } once the mock
// prints its first line, "chatcompat mock listening on URL".
export async function startMock(...args) {
  const child = spawn(PYTHON, ["-m", "mockserver", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = [];
  child.stderr.setEncoding("utf8").on("data", (text) => log.push(text));
  const lines = createInterface({ input: child.stdout });
  const timer = setTimeout(() => child.kill("SIGKILL"), START_TIMEOUT_MS);
  try {
    const [line] = await Promise.race([
      once(lines, "line"),
      once(child, "exit").then(([code]) => {
        throw new Error(`the mock exited (${code}) before listening:\n${log.join("")}`);
      }),
    ]);
    const match = /^chatcompat mock listening on (http:\/\/\S+)$/.exec(line);
    if (!match) throw new Error(`unexpected first line from the mock: ${line}`);
    return { baseURL: match[1], stop: () => stop(child), log: () => log.join("") };
  } catch (error) {
    await stop(child);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

// SIGTERM, then wait for the exit (SIGKILL after 10 s).
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}
