"""Custom operators (``asg``); the compiled parts are imported lazily, on first use."""
