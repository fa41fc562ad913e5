"""SMTP OAuth consent: providers, state + PKCE, the callback and the stored grant."""
