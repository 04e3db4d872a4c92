"""The chat interface every backend implements and returns, below the config and every
backend: messages, sampling, results and errors (base.py), structured-output schemas and the
forms servers honour (structured.py), token usage and budgets (usage.py)."""
