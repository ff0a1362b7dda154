"""Our GPT written in GPT-2's format: a folder that `transformers` loads as GPT2LMHeadModel.

The folder holds config.json, model.safetensors, generation_config.json, tokenizer.json and
tokenizer_config.json. GPT-2 (Radford et al. 2019) is the same pre-LayerNorm decoder as gpt.py,
so the weights map one to one:

    ours (gpt.py, attention.py)         GPT-2 (transformers' GPT2LMHeadModel)
    token_embedding                     transformer.wte, and the tied lm_head
    position.embedding (learned)        transformer.wpe
    blocks.i.ln_1, ln_2, ln_f           transformer.h.i.ln_1, ln_2, transformer.ln_f
    blocks.i.attn.qkv                   transformer.h.i.attn.c_attn
    blocks.i.attn.proj                  transformer.h.i.attn.c_proj
    blocks.i.mlp.fc, mlp.proj           transformer.h.i.mlp.c_fc, mlp.c_proj

GPT-2's linear layers are Conv1D, y = x W + b with W (in, out): our nn.Linear weights (out, in)
are written transposed. Both split the fused projection as [q | k | v], each C wide, and a head
as C / H consecutive columns, and scale by 1 / sqrt(C / H). Where ours differs, it is mapped
exactly:

* GELU: ours is the exact erf form (torch's F.gelu, Hendrycks & Gimpel 2016, eq. 1); GPT-2's
  own is the tanh approximation ("gelu_new"). config.json names "gelu", transformers' exact one.
* bias=False: GPT-2's layers always have biases, so ours are written as zeros (x W + 0 = x W).
* LayerNorm epsilon: written from our modules (torch's default 1e-5, GPT-2's too).

What GPT-2's format cannot express is refused in one line saying why: an adaptive softmax (it has
one output matrix, tied to the input embedding), sinusoidal positions (it has a learned table,
and ours then scale the embeddings by sqrt(C)), an output bias, a tokenizer with no `tokenizers`
equivalent (nltk word splitting). One thing cannot be carried by the weights: our models give
<s>, <pad> and <mask> (and </s> in a character or subword stream) probability zero
(core.NeuralLM.never_next), while GPT-2's head has no output mask. generation_config.json lists
them as suppress_tokens, so transformers' generate never draws them; log-probabilities equal ours
once those ids are masked out of the softmax (tests/test_hf.py checks both, to 1e-5).

The tokenizer is written with the `tokenizers` library (part of the hf extra): our byte-level
BPE as a BPE model over our pre-token pattern (tokenizers.PRETOKEN) and GPT-2's byte symbols
(the same table), a whitespace word vocabulary as a WordLevel model, a character vocabulary as a
WordLevel model over single characters. The five specials keep ids 0-4; `tokenizer(text)` starts
with <s>, as our models read a line. tokenizer_config.json sets split_special_tokens, so a
literal "<unk>" or "<s>" in the text is read as text, as our tokenizers read it (Brown's test
split holds 14,799 "<unk>" words: read as the special token instead, each would cost GPT-2's
format a token of its own and a piece our model never saw).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..checkpoint import naming, replace_folder, staging_folder
from ..errors import ConfigError, LangmodelsError
from ..tokenizers import PRETOKEN, BPETokenizer, CharTokenizer, Vocabulary, WordTokenizer

EXTRA = "pip install 'langmodels[hf]'"


def refusal(model) -> str | None:
    """Why GPT-2's format cannot hold `model` (a fitted GPTLM), or None when it can."""
    config, module = model.config, model._fitted_module()
    if module.output.is_adaptive:
        return ("GPT-2's format has one output matrix tied to the input embedding; this model uses an "
                "adaptive softmax (softmax=adaptive)")
    if config.positions != "learned":
        return ("GPT-2's format has a learned position table; this model uses sinusoidal positions "
                "(and scales its embeddings by sqrt(n_embd))")
    if module.output.bias is not None:
        return "GPT-2's lm_head has no bias; this model's output layer has one"
    tokenizer = model.tokenizer
    if isinstance(tokenizer, WordTokenizer) and tokenizer.mode != "whitespace":
        return (f"its word tokenizer splits with nltk (mode={tokenizer.mode!r}), which the tokenizers library "
                "cannot write; train with whitespace words, BPE or characters")
    if not isinstance(tokenizer, (BPETokenizer, WordTokenizer, CharTokenizer)):
        return f"its tokenizer ({type(tokenizer).__name__}) has no tokenizers-library equivalent"
    return None


def gpt2_state(module) -> dict[str, torch.Tensor]:
    """Our GPT module's weights under GPT-2's names and layouts (float32, contiguous)."""
    C = module.token_embedding.weight.shape[1]
    state = {
        "transformer.wte.weight": module.token_embedding.weight,
        "transformer.wpe.weight": module.position.embedding.weight,
    }

    def layer_norm(ours, theirs):
        state[f"{theirs}.weight"] = ours.weight
        state[f"{theirs}.bias"] = ours.bias if ours.bias is not None else torch.zeros(C)

    def conv1d(ours, theirs):  # nn.Linear (out, in) -> Conv1D (in, out)
        state[f"{theirs}.weight"] = ours.weight.t()
        state[f"{theirs}.bias"] = ours.bias if ours.bias is not None else torch.zeros(ours.weight.shape[0])

    for i, block in enumerate(module.blocks):
        prefix = f"transformer.h.{i}"
        layer_norm(block.ln_1, f"{prefix}.ln_1")
        conv1d(block.attn.qkv, f"{prefix}.attn.c_attn")
        conv1d(block.attn.proj, f"{prefix}.attn.c_proj")
        layer_norm(block.ln_2, f"{prefix}.ln_2")
        conv1d(block.mlp.fc, f"{prefix}.mlp.c_fc")
        conv1d(block.mlp.proj, f"{prefix}.mlp.c_proj")
    layer_norm(module.ln_f, "transformer.ln_f")
    return {name: tensor.detach().float().cpu().contiguous() for name, tensor in state.items()}


def gpt2_config(model) -> dict:
    config, module = model.config, model._fitted_module()
    epsilons = {m.eps for m in module.modules() if isinstance(m, torch.nn.LayerNorm)}
    if len(epsilons) != 1:
        raise LangmodelsError(f"GPT-2's format has one LayerNorm epsilon; this model has {sorted(epsilons)}")
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": len(model.tokenizer.vocab),
        "n_positions": config.context,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,  # 4 n_embd, as ours
        "activation_function": "gelu",  # the exact erf GELU, as F.gelu (not GPT-2's tanh "gelu_new")
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": epsilons.pop(),
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": Vocabulary.bos_id,
        "eos_token_id": Vocabulary.eos_id,
        "pad_token_id": Vocabulary.pad_id,
        "dtype": "float32",
    }


def backend_tokenizer(tokenizer):
    """Our fitted tokenizer as a `tokenizers.Tokenizer` giving the same ids."""
    try:
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    except ImportError:
        raise LangmodelsError(f"exporting to Hugging Face's format needs the tokenizers package: {EXTRA}") from None
    vocab = {token: i for i, token in enumerate(tokenizer.vocab.tokens)}
    if isinstance(tokenizer, BPETokenizer):
        tokens = tokenizer.vocab.tokens
        merges = [(tokens[left], tokens[right]) for left, right in tokenizer.merges]
        backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PRETOKEN.pattern), behavior="isolated"),  # our pre-tokens
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),  # bytes as GPT-2's symbols
        ])
        backend.decoder = decoders.ByteLevel()
    elif isinstance(tokenizer, WordTokenizer):
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=Vocabulary.UNK))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # decoding joins words with spaces
    else:
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=Vocabulary.UNK))
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one per character
        backend.decoder = decoders.Fuse()
    backend.add_special_tokens(list(Vocabulary.SPECIALS))
    backend.post_processor = processors.TemplateProcessing(
        single=f"{Vocabulary.BOS} $A", special_tokens=[(Vocabulary.BOS, Vocabulary.bos_id)])
    return backend


def folder_files(model) -> dict[str, bytes | torch.Tensor]:
    reason = refusal(model)
    if reason is not None:
        raise ConfigError(f"cannot export {model.name} to GPT-2's format: {reason}")
    config = gpt2_config(model)
    never = sorted(model.never_next())
    generation = {"bos_token_id": Vocabulary.bos_id, "eos_token_id": Vocabulary.eos_id,
                  "pad_token_id": Vocabulary.pad_id, "suppress_tokens": never}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model.config.context,
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": True,  # "<unk>" in the text is text, as for our tokenizers
        **{f"{name}_token": token for name, token in zip(("unk", "bos", "eos", "pad", "mask"), Vocabulary.SPECIALS)},
    }
    return {
        "config.json": json.dumps(config, indent=2).encode("utf-8"),
        "generation_config.json": json.dumps(generation, indent=2).encode("utf-8"),
        "tokenizer.json": backend_tokenizer(model.tokenizer).to_str(pretty=True).encode("utf-8"),
        "tokenizer_config.json": json.dumps(tokenizer_config, indent=2).encode("utf-8"),
    }


def save_gpt2(model, path) -> Path:
    """Write `model` (a fitted GPTLM) as a GPT-2 format folder at `path`, atomically: everything
    is written to a temporary folder beside it, then renamed into place."""
    files = folder_files(model)
    target = Path(path)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / "config.json").is_file())):
        raise LangmodelsError(f"refusing to write to {target}: it exists and is not a model folder")
    staging = staging_folder(target)  # after removing what dead writers of `target` left
    try:
        with naming(target):
            for name, data in files.items():
                (staging / name).write_bytes(data)
            save_file(gpt2_state(model._fitted_module()), str(staging / "model.safetensors"),
                      metadata={"format": "pt"})
            replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
