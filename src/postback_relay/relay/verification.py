"""Which secrets a delivery is signed with: the platform's signing secrets from the relay's secret, refetched
once when a signature does not match (a secret rotated in Secrets Manager needs no redeploy), and told apart
from a route whose platform is not set up."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from postback_relay.aws.secrets import RelaySecrets, SecretStore, SecretUnavailable
from postback_relay.core.outcome import SourceNotConfigured, Unauthorized, Unavailable
from postback_relay.platforms.base import SignatureError, SignatureMismatch, WebhookSource


class Verifier:
    """Verifies deliveries against the current secret, with a tolerance for signed timestamps."""

    def __init__(self, secrets: SecretStore, tolerance_seconds: int, clock: Callable[[], float]) -> None:
        self._secrets = secrets
        self._tolerance = tolerance_seconds
        self._clock = clock

    def current(self) -> RelaySecrets:
        """The secret as cached (or fetched); Unavailable when Secrets Manager cannot be read."""
        try:
            return self._secrets.get()
        except SecretUnavailable as exc:
            raise Unavailable(str(exc)) from None

    def verified(self, source: WebhookSource, raw_body: bytes, headers: Mapping[str, str]) -> RelaySecrets:
        """The secret whose signing secrets verify the delivery; Unauthorized, or SourceNotConfigured for a
        platform without any."""
        secrets = self.current()
        signing = secrets.signing_secrets(source.secret_field)
        if not signing:
            refreshed = self._secrets.refresh()  # the key may have been added since the cache was filled
            if refreshed is None or not refreshed.signing_secrets(source.secret_field):
                message = f"the secret has no {source.secret_field}: {source.name} is not set up"
                raise SourceNotConfigured(message, self._looks_signed(source, raw_body, headers))
            secrets, signing = refreshed, refreshed.signing_secrets(source.secret_field)
        now = self._clock()
        tolerance = self._tolerance
        try:
            source.verify(raw_body, headers, signing, now, tolerance)
            return secrets
        except SignatureMismatch as exc:
            refreshed = self._secrets.refresh()  # a rotated signing secret is picked up here
            if refreshed is None or refreshed.signing_secrets(source.secret_field) == signing:
                raise Unauthorized(str(exc)) from None
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None
        try:
            source.verify(raw_body, headers, refreshed.signing_secrets(source.secret_field), now, tolerance)
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None
        return refreshed

    def _looks_signed(self, source: WebhookSource, raw_body: bytes, headers: Mapping[str, str]) -> bool:
        """True when the request passes every check of the platform's signature but the HMAC itself (which
        needs the missing secret): verifying against no secret at all fails only on the match then."""
        try:
            source.verify(raw_body, headers, (), self._clock(), self._tolerance)
        except SignatureMismatch:
            return True
        except SignatureError:
            return False
        return False  # unreachable: no secret, no match
