// Hugging Face's own tokenizer code in JavaScript (npm @huggingface/transformers and its
// @huggingface/tokenizers) over a JSON array of texts: prints a JSON array of id arrays, as
// tokenizer.encode(text) gives them (added tokens matched, the post-processor's tokens added).
// The tokenizer is loaded offline from a local folder holding tokenizer.json and
// tokenizer_config.json; nothing is downloaded.
// Usage: node hf_reference.mjs PACKAGE_DIR MODELS_ROOT MODEL_NAME INPUT.json
import fs from 'node:fs';
import path from 'node:path';
import {pathToFileURL} from 'node:url';

const [packageDir, modelsRoot, modelName, inputPath] = process.argv.slice(2);
const manifest = JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
const entry = manifest.exports?.node?.import?.default ?? manifest.module ?? manifest.main;
const {AutoTokenizer, env} = await import(pathToFileURL(path.resolve(packageDir, entry)).href);

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.resolve(modelsRoot) + path.sep;
env.useFSCache = false;
env.useBrowserCache = false;
const tokenizer = await AutoTokenizer.from_pretrained(modelName, {local_files_only: true});

const texts = JSON.parse(fs.readFileSync(inputPath, 'utf8'));
const ids = texts.map((text) => Array.from(tokenizer.encode(text)));
process.stdout.write(JSON.stringify({version: manifest.version, ids}) + '\n');
