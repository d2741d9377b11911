"""Talking to the CodeArts Build API: requests, auth, typed answers, one error tree."""
