"""The only code that talks to the Hub: HTTP responses in, frozen dataclasses or typed errors out."""
