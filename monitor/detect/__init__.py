"""Pure detection: no network, no database, no clock (time is passed in)."""
