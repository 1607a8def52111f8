"""The loader registry: one row per call that loads a repo from the Hub.

A row says which argument (position or keyword) names the repo, which keyword is the revision,
the repo type (fixed, or read from `repo_type=`) and, where it matters, which module the call
must come from (`evaluate.load`, not any `load`). Adding a loader is one row here and one test.

    name        the called name: `X.from_pretrained(...)` -> "from_pretrained", `SentenceTransformer(...)`
    type        model | dataset | space | kernel (the default when `repo_type=` is absent)
    pos, kws    the repo argument: its position and keyword names (every keyword present is a reference)
    method      only `X.name(...)` counts (a bare `from_pretrained()` is someone else's)
    modules     the call must come from one of these modules (through its import, or `module.name(...)`)
    owners      `Owner.name(...)` only for these owners (prefix match); with pos/kws overriding the base row
    namespace   single names live in this namespace (`SentenceTransformer("all-MiniLM-L6-v2")`)
    prefix      only values with this prefix are Hub ids (`hf-hub:org/name` for timm / open_clip)
    subset      (position, keyword) of a dataset config name
    suffix      match every name ending with `name` (TRL's `SFTTrainer`, `DPOTrainer` ...)
    quiet       an argument that is not a string we can read is not reported as unresolved
                (a trainer's `model=` is usually a model object)
    runs_code   the loader runs code from the repo (evaluate's metric scripts): remote code
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Loader:
    name: str
    type: str
    pos: int | None
    kws: tuple[str, ...]
    revision_kw: tuple[str, ...] = ("revision",)
    method: bool = False
    modules: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    namespace: str | None = None
    prefix: str | None = None
    subset: tuple[int | None, str] | None = None
    suffix: bool = False
    quiet: bool = False
    runs_code: bool = False


_REPO = ("pretrained_model_name_or_path", "model_id", "repo_id", "model_name")  # model_name=: unsloth's FastModel
_LORA = ("pretrained_model_name_or_path_or_dict",)
_HF_HUB = ("timm", "open_clip")

LOADERS: tuple[Loader, ...] = (
    # transformers / diffusers / peft / llama-cpp-python (Llama.from_pretrained(repo_id, filename))
    Loader("from_pretrained", "model", 1, ("model_id",), method=True, owners=("PeftModel", "PeftMixedModel")),
    Loader("from_pretrained", "model", 0, _REPO, method=True),
    Loader("pipeline", "model", 1, ("model",)),
    Loader("load_adapter", "model", 0, ("peft_model_id", "pretrained_model_name_or_path"), method=True),
    Loader("load_lora_weights", "model", 0, _LORA, method=True),
    Loader("load_lora_adapter", "model", 0, _LORA, method=True),
    Loader("load_ip_adapter", "model", 0, _LORA, method=True),
    Loader("load_textual_inversion", "model", 0, _LORA, method=True),
    # huggingface_hub
    Loader("hf_hub_download", "model", 0, ("repo_id",)),
    Loader("snapshot_download", "model", 0, ("repo_id",)),
    Loader("hf_hub_url", "model", 0, ("repo_id",)),
    # datasets / evaluate
    Loader("load_dataset", "dataset", 0, ("path",), subset=(1, "name")),
    Loader("load_dataset_builder", "dataset", 0, ("path",), subset=(1, "name")),
    Loader("load", "space", 0, ("path",), modules=("evaluate",), namespace="evaluate-metric", runs_code=True),
    # sentence-transformers
    Loader("SentenceTransformer", "model", 0, ("model_name_or_path",), namespace="sentence-transformers"),
    Loader("CrossEncoder", "model", 0, ("model_name_or_path", "model_name")),
    Loader("SparseEncoder", "model", 0, ("model_name_or_path",)),
    # TRL trainers: SFTTrainer(model="Qwen/..."), GKDTrainer(teacher_model="..."), DPOTrainer(ref_model=...)
    Loader("Trainer", "model", 0, ("model", "ref_model", "reward_model", "teacher_model"), suffix=True, quiet=True),
    # timm / open_clip: only "hf-hub:org/name" is the Hub; other names are built-in architectures
    Loader("create_model", "model", 0, ("model_name",), modules=_HF_HUB, prefix="hf-hub:"),
    Loader("create_model_and_transforms", "model", 0, ("model_name",), modules=("open_clip",), prefix="hf-hub:"),
    Loader("create_model_from_pretrained", "model", 0, ("model_name",), modules=("open_clip",), prefix="hf-hub:"),
    Loader("get_tokenizer", "model", 0, ("model_name",), modules=("open_clip",), prefix="hf-hub:"),
    # vllm / mlx-lm
    Loader("LLM", "model", 0, ("model",), modules=("vllm",)),
    Loader("load", "model", 0, ("path_or_hf_repo",), modules=("mlx_lm",)),
    # kernels (huggingface/kernels): code run on the GPU, reported as type `kernel`
    Loader("get_kernel", "kernel", 0, ("repo_id",), modules=("kernels",)),
)

BY_NAME: dict[str, list[Loader]] = {}
for _row in LOADERS:
    BY_NAME.setdefault(_row.name, []).append(_row)
SUFFIXES = tuple(row for row in LOADERS if row.suffix)
URL_WORDS = _URLS = {b"hf://", b"huggingface.co/", b"hf.co/"}
# The bytes a file must hold to be parsed at all (a cheap filter; the syntax tree decides): a
# loader's name, or for a generic name (`load`, `LLM`) the module it must come from.
# What may follow a called name before its "(": Python allows blanks and a line continuation
# (`from_pretrained ("org/m")`, `.from_pretrained\\n(...)`), and a gate must not be dodged by a space.
_GAPS = (b"(", b" ", b"\t", b"\\", b"\n", b"\r")
TRIGGERS = tuple(sorted({m.encode() for row in LOADERS for m in row.modules}
                        | {row.name.encode() + g for row in LOADERS if row.suffix for g in _GAPS}
                        | {row.name.encode() for row in LOADERS if not row.modules and not row.suffix} | _URLS))
# The bytes a line must hold for its statement to be visited: a loader's name and its parenthesis,
# blanks and continuations allowed between them (the match's first line is the one counted).
LINE_TRIGGERS = tuple(sorted(_URLS))
LINE_PATTERN = re.compile(rb"(?:" + b"|".join(sorted({re.escape(row.name.encode()) for row in LOADERS}, reverse=True))
                          + rb")(?:\s|\\)*\(")


def find(name: str, owner: str, origin: str | None, is_method: bool) -> Loader | None:
    """The row for a call of `name` (`owner` = the dotted object of a method call, `origin` = the
    module a bare name was imported from), or None when no row applies."""
    rows = BY_NAME.get(name)
    if rows is None:
        rows = [r for r in SUFFIXES if name.endswith(r.name) and name[:1].isupper()]
    module = (owner.split(".", 1)[0] if is_method else (origin or "").split(".", 1)[0])
    owner_last = owner.rsplit(".", 1)[-1]
    for row in rows:
        if row.method and not is_method:
            continue
        if row.modules and module not in row.modules:
            continue
        if row.owners and not owner_last.startswith(row.owners):
            continue
        return row
    return None
