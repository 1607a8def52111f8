"""The public Hub repos and namespaces the contract tests use, mirrored into the emulator.

tests/test_hub_contract.py asserts the same things of huggingface.co (`pytest -m online`) and of
the emulator seeded here, so each mirror copies what those assertions read of the real thing:
`openai-community/gpt2` and `google-bert/bert-base-uncased` predate the Hub's 2022 import (commits
from 2019, `createdAt` the import placeholder), `gpt2` is a legacy name that 307s to
`openai-community/gpt2`, `meta-llama/Llama-3.1-8B` is gated ("manual") and not granted to us,
`ykilcher/gpt-4chan` was disabled by the Hub, and `runwayml/stable-diffusion-v1-5` 307s to a
*different* repo created 2024-08-30. `deepset/roberta-base-squad2` is an import-era repo that
reports `2022-03-02T23:29:05.000Z` (huggingface_hub cassette InferenceApiTest.test_inference_missing_input).
"""

from __future__ import annotations

GPT2 = "openai-community/gpt2"
BERT = "google-bert/bert-base-uncased"
LLAMA = "meta-llama/Llama-3.1-8B"
GPT4CHAN = "ykilcher/gpt-4chan"
RUNWAY = "runwayml/stable-diffusion-v1-5"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
ORG = "Qwen"  # an org asked for in lower case answers 200 with this casing
USER = "julien-c"  # a user; other casing 307s
MEMBERS_OF = "huggingface"
DEEPSET = "deepset/roberta-base-squad2"  # import-era, `createdAt` at second :05 of the import minute

# An LFS file: resolve redirects it to the CDN (the real one is 548 MB; only its first bytes are read).
SAFETENSORS = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(4096)
CONFIG = '{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}'


def seed(hub) -> None:
    """Create the mirrors (the emulator must be empty of these names)."""
    hub.add_org("openai-community", fullname="OpenAI community", verified=False, followers=2000,
                created_at="2022-03-02T23:29:04Z")
    hub.add_org("google-bert", fullname="BERT community", followers=500, created_at="2024-02-15T10:00:00Z")
    hub.add_org("meta-llama", fullname="Meta Llama", verified=True, followers=60000, created_at="2023-02-22T12:00:00Z")
    hub.add_org(ORG, fullname="Qwen", verified=True, followers=40000, created_at="2023-07-20T08:00:00Z")
    hub.add_org("stable-diffusion-v1-5", fullname="Stable Diffusion v1-5", created_at="2024-08-30T10:00:00Z")
    hub.add_org("runwayml", fullname="Runway", verified=True, created_at="2022-03-02T23:29:04Z")
    hub.add_user(USER, fullname="Julien Chaumond", followers=3000, created_at="2019-09-11T12:00:00Z")
    hub.add_user("ykilcher", fullname="Yannic Kilcher", created_at="2020-06-01T12:00:00Z")
    hub.add_org(MEMBERS_OF, fullname="Hugging Face", verified=True, followers=50000,
                members=[USER, "lysandre", "osanseviero"], created_at="2019-06-01T12:00:00Z")
    # Legacy repos: history from 2019, reported created at the 2022 import.
    hub.add_repo(GPT2, files={"config.json": CONFIG, "README.md": "# gpt2", "model.safetensors": SAFETENSORS},
                 created_at="2019-02-14T12:00:00Z",
                 downloads=10_000_000, tags=["transformers"])
    for i in range(55):  # more than one page of history (50), like the real one
        hub.commit(GPT2, {"README.md": f"# gpt2 rev {i}"}, title=f"Update README ({i})", author="julien-c",
                   date=f"2020-{1 + i % 12:02d}-{1 + i % 27:02d}T10:00:00Z")
    hub.add_redirect("gpt2", GPT2)
    hub.add_org("deepset", fullname="deepset", verified=True, created_at="2022-03-02T23:29:05Z")
    hub.add_repo(DEEPSET, files={"config.json": '{"model_type": "roberta"}'}, created_at="2020-01-01T12:00:00Z",
                 import_second=5)
    hub.add_repo(BERT, files={"config.json": '{"model_type": "bert"}'}, created_at="2018-11-14T12:00:00Z")
    hub.add_repo(LLAMA, files={"config.json": '{"model_type": "llama"}', "model.safetensors": b"\x00" * 64},
                 gated="manual", created_at="2024-07-18T12:00:00Z")
    hub.add_repo(GPT4CHAN, files={"pytorch_model.bin": b"weights"}, created_at="2022-06-01T12:00:00Z")
    hub.set_disabled(GPT4CHAN)
    # a real createdAt has milliseconds; the `_id` keeps the whole second
    hub.add_repo(SD15, files={"model_index.json": "{}"}, created_at="2024-08-30T10:00:00.437Z")
    hub.add_redirect(RUNWAY, SD15)
