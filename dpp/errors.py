class TenantNotFound(Exception):
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        super().__init__(f"no tenant {tenant_id}")


class ApiKeyNotFound(Exception):
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        super().__init__(f"no API key with prefix {prefix}")


class SwitchChangeRejected(Exception):
    """A kill-switch change without the reason or the actor the audit history requires."""

    def __init__(self, missing: str) -> None:
        self.missing = missing
        super().__init__(f"a change of the platform switch needs a non-empty {missing}")
