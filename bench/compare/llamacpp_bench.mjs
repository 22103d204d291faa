// llama.cpp's side of bench/compare/llamacpp.sh: the same model (a GGUF from gguf_writer.py) and
// the same token ids as qkv_compare_bench generate, through npm's node-llama-cpp (llama.cpp's
// prebuilt CPU binaries; it picks its ggml-cpu variant for the CPU at load time).
//
//   node llamacpp_bench.mjs --module DIR/node_modules/node-llama-cpp --model M.gguf \
//     --threads 2 --prompt 1,2,3 --tokens 64 --prompt-processing 512 --runs 3 --warmup-runs 1
//
// Generation: a fresh sequence evaluates the prompt, then greedy (temperature 0) decodes
// --tokens tokens; the whole is timed, as qkv's Generate is. Prompt processing: a fresh
// sequence evaluates --prompt-processing random ids (seeded) and chooses the next token.
// Prints one JSON line (the shape of qkv_compare_bench's).
import path from "node:path";

function parseArgs(argv) {
  const args = {vocab: 0, threads: 2, tokens: 64, promptProcessing: 0, runs: 3, warmupRuns: 1, prompt: []};
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    const positive = () => {
      const number = Number(value);
      if (!Number.isInteger(number) || number < 0) throw new Error(`${flag} ${value}: not a count`);
      return number;
    };
    if (flag === "--module") args.module = path.resolve(value);
    else if (flag === "--model") args.model = path.resolve(value);
    else if (flag === "--threads") args.threads = positive();
    else if (flag === "--tokens") args.tokens = positive();
    else if (flag === "--prompt-processing") args.promptProcessing = positive();
    else if (flag === "--runs") {
      args.runs = positive();
      if (args.runs === 0) throw new Error("--runs 0: at least one timed run is needed");
    }
    else if (flag === "--vocab") args.vocab = positive();
    else if (flag === "--warmup-runs") args.warmupRuns = positive();
    else if (flag === "--prompt") args.prompt = value.split(",").map(Number);
    else throw new Error(`unknown flag ${flag}`);
  }
  if (!args.module || !args.model || args.prompt.length === 0 || args.vocab === 0) {
    throw new Error("--module, --model, --prompt and --vocab are required");
  }
  return args;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

// The same tokens in every run and in every engine's run: a seeded linear congruential stream.
function randomTokens(count, vocab, seed) {
  let state = BigInt(seed);
  const tokens = [];
  for (let i = 0; i < count; ++i) {
    state = (state * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
    tokens.push(Number((state >> 33n) % BigInt(vocab)));
  }
  return tokens;
}

async function generate(context, prompt, count) {
  const sequence = context.getSequence();
  const generated = [];
  const start = performance.now();
  if (count > 0) {
    for await (const token of sequence.evaluate(prompt, {temperature: 0})) {
      generated.push(token);
      if (generated.length === count) break;
    }
  }
  const ms = performance.now() - start;
  sequence.dispose();
  return {ms, generated};
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const {getLlama, LlamaLogLevel} = await import(path.join(args.module, "dist", "index.js"));
  const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error,
                                maxThreads: args.threads});
  const model = await llama.loadModel({modelPath: args.model, gpuLayers: 0});
  const contextSize = Math.max(args.prompt.length + args.tokens, args.promptProcessing) + 16;
  const context = await model.createContext({
    contextSize, threads: {ideal: args.threads, min: args.threads},
    batchSize: Math.max(512, args.promptProcessing), sequences: 1, flashAttention: false});
  const runMs = [];
  let generated = [];
  for (let run = 0; run < args.warmupRuns + args.runs; ++run) {
    const result = await generate(context, args.prompt, args.tokens);
    generated = result.generated;
    if (run >= args.warmupRuns) runMs.push(result.ms);
    process.stderr.write(`llama.cpp generate: run ${run + 1}: ${args.tokens} tokens in ` +
                         `${result.ms.toFixed(1)} ms\n`);
  }
  let promptProcessing = null;
  if (args.promptProcessing > 0) {
    const longPrompt = randomTokens(args.promptProcessing, args.vocab, 3);
    const prefillMs = [];
    for (let run = 0; run < args.warmupRuns + args.runs; ++run) {
      const result = await generate(context, longPrompt, 1);
      if (run >= args.warmupRuns) prefillMs.push(result.ms);
      process.stderr.write(`llama.cpp prompt processing: run ${run + 1}: ` +
                           `${args.promptProcessing} tokens in ${result.ms.toFixed(1)} ms\n`);
    }
    promptProcessing = {tokens: args.promptProcessing, run_ms: prefillMs,
                        tokens_per_s: args.promptProcessing / (median(prefillMs) / 1000)};
  }
  const medianMs = median(runMs);
  console.log(JSON.stringify({
    implementation: "llama.cpp", binding: "node-llama-cpp 3.21.1", threads: args.threads,
    model_file: path.basename(args.model), prompt: args.prompt, generated,
    new_tokens: args.tokens, run_ms: runMs, run_ms_median: medianMs,
    tokens_per_s: args.tokens / (medianMs / 1000), prompt_processing: promptProcessing}));
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((error) => {
  process.stderr.write(`llamacpp_bench: ${error.stack ?? error}\n`);
  process.exit(1);
});
