"""Settings: the frozen :class:`SSOConfig`, its conversion from strings and its validation."""
