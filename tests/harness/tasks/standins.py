"""Tiny stand-ins for X-ARES's pretrained dependencies, built offline inside the runtime image.

    python standins.py --out STORE --sentences SENTENCES.json

Not a test module: the tests mount it into a runtime container (the host has no torch and no
transformers) to write, with no download,

    STORE/Qwen/Qwen2.5-0.5B/            a Qwen2-architecture causal LM (2 layers, width 32, float32,
                                        untied embeddings) and a byte-level BPE tokenizer trained on the
                                        sentences, with Qwen's special tokens (<|endoftext|> as eos and
                                        pad, <|vision_end|> as X-ARES's separator)
    STORE/google-bert/bert-base-uncased/ a WordPiece tokenizer over letters and digits

Why these choices (see the X-ARES notes): float32, because transformers 5 loads a checkpoint in its
own dtype and X-ARES's autocast is CUDA-only (a bf16 LM fails on a CPU); untied embeddings, because a
tiny random LM with tied ones copies its input under teacher forcing. The LM is also trained for a
few seconds on `<|vision_end|>SENTENCE<|endoftext|>` behind random prefixes of X-ARES's audio-prefix
lengths, so that it ends its answers: an untrained LM rambles for X-ARES's 200 new tokens, its word
error rate exceeds 1, and WER_inv is clipped to 0 whatever the audio, which would prove nothing.
The stand-ins prove that X-ARES loads and scores through the store; real numbers need the real models.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import time
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]


def build_qwen_tokenizer(sentences: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = sentences * 4 + [string.ascii_uppercase + " " + string.ascii_lowercase + " ' 0123456789"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIALS[1:], model_max_length=4096)


def build_qwen(tokenizer, sentences: list[str], steps: int, seed: int):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eos = tokenizer.eos_token_id
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=False, bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a 38k-parameter model: threads only contend (5x slower with 2 on 2 busy cores)
    rng = random.Random(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    embed = model.get_input_embeddings()
    model.train()
    started = time.monotonic()
    for _ in range(steps):
        batch = [rng.choice(sentences) for _ in range(8)]
        text = tokenizer([f"<|vision_end|>{s}<|endoftext|>" for s in batch], padding=True, return_tensors="pt")
        prefix_len = rng.randint(20, 200)  # X-ARES puts the adapted audio frames first
        prefix = torch.randn(len(batch), prefix_len, config.hidden_size) * rng.choice([0.02, 0.1, 0.3, 1.0, 3.0])
        inputs = torch.cat([prefix, embed(text.input_ids)], dim=1)
        mask = torch.cat([torch.ones(len(batch), prefix_len, dtype=torch.long), text.attention_mask], dim=1)
        labels = text.input_ids.masked_fill(text.attention_mask == 0, -100)
        # the first pad of each row is its eos: learn to stop there
        ends = text.attention_mask.sum(dim=1)
        for row, end in enumerate(ends.tolist()):
            if end < labels.shape[1]:
                labels[row, end] = eos
        labels = torch.cat([torch.full((len(batch), prefix_len), -100), labels], dim=1)
        loss = model(inputs_embeds=inputs, attention_mask=mask, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    model.generation_config = GenerationConfig(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
                                               max_new_tokens=200)
    print(f"stand-in Qwen2: {sum(p.numel() for p in model.parameters())} parameters, {steps} steps in "
          f"{time.monotonic() - started:.1f} s, last loss {loss.item():.3f}")
    return model


def write_qwen(out: Path, sentences: list[str], steps: int, seed: int) -> None:
    tokenizer = build_qwen_tokenizer(sentences)
    model = build_qwen(tokenizer, sentences, steps, seed)
    target = out / "Qwen" / "Qwen2.5-0.5B"
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    # transformers 5 writes tokenizer_class "TokenizersBackend", unknown to 4.x; the real repo says Qwen2Tokenizer
    tc = target / "tokenizer_config.json"
    config = json.loads(tc.read_text())
    config["tokenizer_class"] = "Qwen2Tokenizer"
    tc.write_text(json.dumps(config, indent=2))


def write_bert(out: Path) -> None:
    from transformers import BertTokenizerFast

    target = out / "google-bert" / "bert-base-uncased"
    target.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(string.ascii_lowercase + string.digits + ".,'!?-") \
        + ["##" + c for c in string.ascii_lowercase + string.digits]
    (target / "vocab.txt").write_text("\n".join(vocab) + "\n")
    try:  # transformers >= 5: vocab=path; 4.x: vocab_file=path
        tok = BertTokenizerFast(vocab=str(target / "vocab.txt"), do_lower_case=True)
        assert tok.vocab_size == len(vocab)
    except (TypeError, AssertionError):
        tok = BertTokenizerFast(vocab_file=str(target / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(target)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--sentences", required=True, help="JSON list of upper-case sentences")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", help="float32, or bfloat16 to show the CPU failure")
    args = parser.parse_args()
    out = Path(args.out)
    sentences = json.loads(Path(args.sentences).read_text())
    write_qwen(out, sentences, args.steps, args.seed)
    if args.dtype != "float32":
        import torch
        from transformers import Qwen2ForCausalLM

        target = out / "Qwen" / "Qwen2.5-0.5B"
        Qwen2ForCausalLM.from_pretrained(target).to(getattr(torch, args.dtype)).save_pretrained(target)
    write_bert(out)
    for path in sorted(out.rglob("*")):
        if path.is_file():
            print(path.relative_to(out), path.stat().st_size)


if __name__ == "__main__":
    main()
