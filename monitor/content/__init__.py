"""Content inspection: pure readers of untrusted file bytes (pickle, ZIP, tar, npy, GGUF, Jinja
templates). Bytes come in through a RangeReader, verdicts go out as frozen dataclasses; nothing
here talks to the Hub, loads, executes or renders what it reads."""
