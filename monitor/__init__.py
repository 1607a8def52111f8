"""hubwatch: watch the Hugging Face Hub for silent model changes and look-alike namespaces."""

__version__ = "0.1.0"
