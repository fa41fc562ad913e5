"""HTTPS fakes of Microsoft identity, Graph, Google token and Gmail (fixtures)."""
