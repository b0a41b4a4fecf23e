pytest_plugins = ["terrascale.common.testing.plugin"]
