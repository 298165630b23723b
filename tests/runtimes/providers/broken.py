"""A provider module whose own import fails (for the registry's test): that is a bug to see,
not a provider missing from the build."""

import a_library_nobody_installed  # noqa: F401
