"""The rules that change things, one module per subject: tokens, sync, profiles, licence."""
