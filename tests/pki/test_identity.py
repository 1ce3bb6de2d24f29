from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pki_helpers import T0

from meshtutor.errors import PKIError
from meshtutor.pki import (
    ISTIO_ROTATION,
    LINKERD_ROTATION,
    ManualClock,
    Mesh,
    MeshCA,
    RotationPolicy,
    WorkloadIdentity,
)


class TestWorkloadIdentity:
    def test_istio_name_is_spiffe_id(self) -> None:
        identity = WorkloadIdentity(Mesh.ISTIO, "foo", "sleep")
        assert identity.name == "spiffe://cluster.local/ns/foo/sa/sleep"
        assert str(identity) == identity.name
        assert identity.workload == "foo/sleep"

    def test_linkerd_name(self) -> None:
        identity = WorkloadIdentity(Mesh.LINKERD, "emojivoto", "web")
        assert identity.name == "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"

    def test_trust_domain(self) -> None:
        identity = WorkloadIdentity(Mesh.LINKERD, "foo", "sleep", "example.org")
        assert identity.name == "sleep.foo.serviceaccount.identity.linkerd.example.org"

    def test_mesh_from_string(self) -> None:
        assert WorkloadIdentity("istio", "foo", "sleep").mesh is Mesh.ISTIO  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("text", "name"),
        [
            ("foo/sleep", "spiffe://cluster.local/ns/foo/sa/sleep"),
            ("spiffe://example.org/ns/foo/sa/sleep", "spiffe://example.org/ns/foo/sa/sleep"),
            (
                "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
                "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
            ),
        ],
    )
    def test_parse(self, text: str, name: str) -> None:
        assert WorkloadIdentity.parse(text).name == name

    def test_parse_short_form_takes_mesh(self) -> None:
        identity = WorkloadIdentity.parse("foo/sleep", mesh="linkerd")
        assert identity.mesh is Mesh.LINKERD

    def test_parse_no_slash(self) -> None:
        with pytest.raises(PKIError, match="expected NAMESPACE/SERVICEACCOUNT"):
            WorkloadIdentity.parse("sleep")

    def test_parse_two_slashes(self) -> None:
        with pytest.raises(PKIError, match="expected NAMESPACE/SERVICEACCOUNT"):
            WorkloadIdentity.parse("foo/sleep/extra")

    def test_uppercase_namespace(self) -> None:
        with pytest.raises(PKIError, match="namespace 'Foo' is not a valid Kubernetes name"):
            WorkloadIdentity(Mesh.ISTIO, "Foo", "sleep")

    def test_long_namespace(self) -> None:
        with pytest.raises(PKIError, match="at most 63"):
            WorkloadIdentity(Mesh.ISTIO, "a" * 64, "sleep")

    def test_bad_service_account(self) -> None:
        with pytest.raises(PKIError, match="service account 'sleep_1' is not a valid"):
            WorkloadIdentity(Mesh.ISTIO, "foo", "sleep_1")

    def test_bad_trust_domain(self) -> None:
        with pytest.raises(PKIError, match="trust domain 'Cluster Local' is not valid"):
            WorkloadIdentity(Mesh.ISTIO, "foo", "sleep", "Cluster Local")


_LABELS = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


class TestWorkloadIdentityRoundTrip:
    @given(
        mesh=st.sampled_from(list(Mesh)),
        namespace=_LABELS,
        service_account=_LABELS,
        trust_domain=st.sampled_from(["cluster.local", "example.org", "td"]),
    )
    def test_parse_of_name_gives_back_the_identity(
        self, mesh: Mesh, namespace: str, service_account: str, trust_domain: str
    ) -> None:
        identity = WorkloadIdentity(mesh, namespace, service_account, trust_domain)
        assert WorkloadIdentity.parse(identity.name) == identity


class TestRotationPolicy:
    def test_istio_defaults(self) -> None:
        assert RotationPolicy(0.5, 0.01) == ISTIO_ROTATION

    def test_linkerd_defaults(self) -> None:
        assert RotationPolicy(0.7) == LINKERD_ROTATION

    def test_jitter_stays_within_one_percent(self) -> None:
        rng = random.Random(1)
        end = T0 + timedelta(hours=24)
        for _ in range(200):
            at = ISTIO_ROTATION.renew_at(T0, end, rng)
            assert T0 + timedelta(hours=11.76) <= at <= T0 + timedelta(hours=12.24)

    def test_linkerd_at_seventy_percent(self) -> None:
        at = LINKERD_ROTATION.renew_at(T0, T0 + timedelta(hours=24), random.Random(1))
        assert at == T0 + timedelta(hours=16, minutes=48)

    def test_at_least_a_second(self) -> None:
        at = LINKERD_ROTATION.renew_at(T0, T0, random.Random(1))
        assert at == T0 + timedelta(seconds=1)

    def test_fraction_out_of_range(self) -> None:
        with pytest.raises(PKIError, match="expected 0 < fraction < 1"):
            RotationPolicy(1.2)

    def test_jitter_too_large(self) -> None:
        with pytest.raises(PKIError, match="0 <= jitter < fraction"):
            RotationPolicy(0.5, 0.6)


class TestWorkloadCredential:
    def test_fresh(self, istio: MeshCA) -> None:
        credential = istio.credential("foo", "sleep")
        assert credential.rotations == 0
        assert credential.rotated_at is None
        assert credential.identity.name == "spiffe://cluster.local/ns/foo/sa/sleep"
        assert credential.chain == (credential.certificate,)
        assert not credential.rotation_due()

    def test_istio_rotation_due_at_half_life(self, istio: MeshCA) -> None:
        credential = istio.credential("foo", "sleep")
        assert not credential.rotation_due(T0 + timedelta(hours=11, minutes=45))
        assert credential.rotation_due(T0 + timedelta(hours=12, minutes=15))

    def test_linkerd_rotation_due_at_seventy_percent(self, linkerd: MeshCA) -> None:
        credential = linkerd.credential("foo", "sleep")
        assert credential.renew_at == T0 + timedelta(hours=16, minutes=48)
        assert not credential.rotation_due(T0 + timedelta(hours=16))
        assert credential.rotation_due(T0 + timedelta(hours=17))

    def test_rotate_reissues_at_clock_now(self, istio: MeshCA, clock: ManualClock) -> None:
        credential = istio.credential("foo", "sleep")
        first = credential.certificate
        clock.advance(timedelta(hours=13))
        issued = credential.rotate()
        assert credential.rotations == 1
        assert credential.rotated_at == T0 + timedelta(hours=13)
        assert issued.certificate.serial_number != first.serial_number
        assert credential.current.not_before == T0 + timedelta(hours=13)
        assert credential.private_key is not None

    def test_fast_forward_one_hour_does_not_rotate(self, istio: MeshCA, clock: ManualClock) -> None:
        credential = istio.credential("foo", "sleep")
        serial = credential.certificate.serial_number
        clock.advance(timedelta(hours=1))
        assert credential.refresh() == 0
        assert credential.certificate.serial_number == serial

    def test_fast_forward_a_day_rotates_twice(self, istio: MeshCA, clock: ManualClock) -> None:
        credential = istio.credential("foo", "sleep")
        clock.advance(timedelta(hours=24, minutes=30))
        assert credential.refresh() == 2
        assert credential.rotations == 2
        # The second renewal happened near +24 h, and the certificate in use is from then.
        assert credential.rotated_at is not None
        assert abs(credential.rotated_at - (T0 + timedelta(hours=24))) < timedelta(minutes=30)
        assert credential.current.not_before == credential.rotated_at.replace(microsecond=0)
        assert istio.verify(credential.chain).ok

    def test_fast_forward_a_year(self, istio: MeshCA, clock: ManualClock) -> None:
        credential = istio.credential("foo", "sleep")
        clock.advance(timedelta(days=365))
        assert 725 <= credential.refresh() <= 735
        assert credential.rotation_error is None
        assert istio.verify(credential.chain).ok

    def test_refresh_stops_when_the_issuer_expires(
        self, linkerd: MeshCA, clock: ManualClock
    ) -> None:
        credential = linkerd.credential("foo", "sleep")
        clock.advance(timedelta(days=366))
        assert credential.refresh() > 500
        assert credential.rotation_error is not None
        assert "expired at 2027-01-01 00:00 UTC; rotate the root first" in (
            credential.rotation_error
        )
        # Istio's minTTL: the last certificates never outlive the CA.
        assert credential.current.not_after <= linkerd.root.not_valid_after_utc
        assert linkerd.verify(credential.chain).reason == "expired"

    def test_rotate_with_expired_ca(self, linkerd: MeshCA, clock: ManualClock) -> None:
        credential = linkerd.credential("foo", "sleep")
        clock.advance(timedelta(days=400))
        with pytest.raises(PKIError, match="cannot issue a certificate at 2027-02-05"):
            credential.rotate()
        assert credential.rotations == 0

    def test_repr(self, istio: MeshCA) -> None:
        assert "rotations=0" in repr(istio.credential("foo", "sleep"))
