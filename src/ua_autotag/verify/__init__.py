"""Local peers that record what clients send, used by ``ua-autotag verify`` and the tests."""
