"""Model updates in the field: fetch, verify, install atomically, shadow, promote or roll back.

store.py keeps versions on disk, fetch.py brings a bundle in, shadow.py compares a candidate
with the live model, manager.py runs the lifecycle and publishes every step."""
