"""Which secrets a delivery is signed with: the platform's signing secrets from the relay's secret, refetched
once when a signature does not match (a secret rotated in Secrets Manager needs no redeploy), and told apart
from a route whose platform is not set up."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from postback_relay.aws.secrets import RelaySecrets, SecretStore, SecretUnavailable
from postback_relay.core.conversion import ParseContext
from postback_relay.core.inbound import InboundRequest
from postback_relay.core.outcome import SourceNotConfigured, Unauthorized, Unavailable
from postback_relay.platforms.base import SignatureError, SignatureMismatch, WebhookSource
from postback_relay.platforms.checks import Check, RequestSource


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

    def configured(self, source: RequestSource) -> RelaySecrets:
        """The secret, once it holds the field of the biller's first check (refetched once when it does not:
        the key may have been added since the cache was filled); SourceNotConfigured otherwise."""
        secrets = self.current()
        if secrets.signing_secrets(source.secret_field):
            return secrets
        refreshed = self._secrets.refresh()
        if refreshed is None or not refreshed.signing_secrets(source.secret_field):
            raise SourceNotConfigured(f"the secret has no {source.secret_field}: {source.name} is not set up")
        return refreshed

    def checked(
        self, source: RequestSource, request: InboundRequest, context: ParseContext, secrets: RelaySecrets
    ) -> RelaySecrets:
        """The secret whose values pass each of the biller's declared checks, in order; Unauthorized at the
        first that fails. An optional check (a digest salt) whose field is not set is skipped; a mismatch is
        tried once more with the secret refetched, as a rotated signing secret is."""
        for check in source.checks:
            values = secrets.signing_secrets(check.field)
            if not values:
                if check.required:  # only the first check's field is known to be set (``configured``)
                    raise SourceNotConfigured(f"the secret has no {check.field}: {source.name} is not set up")
                continue
            secrets = self._check(check, request, context, secrets, values)
        return secrets

    def _check(
        self,
        check: Check,
        request: InboundRequest,
        context: ParseContext,
        secrets: RelaySecrets,
        values: list[str],
    ) -> RelaySecrets:
        try:
            check.verify(request, values, context)
            return secrets
        except SignatureMismatch as exc:
            refreshed = self._secrets.refresh()
            if refreshed is None or refreshed.signing_secrets(check.field) == values:
                raise Unauthorized(str(exc)) from None
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None
        try:
            check.verify(request, refreshed.signing_secrets(check.field), context)
        except SignatureError as exc:
            raise Unauthorized(str(exc)) from None
        return refreshed
