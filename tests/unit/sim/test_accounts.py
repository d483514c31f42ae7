"""Simulated login: single-use expiring nonces, signature recovery, JWT expiry."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from bot.sim.accounts import Accounts, AuthFailed
from tests.conftest import TEST_ADDRESS, TEST_KEY


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def sign(message: str, key: str = TEST_KEY) -> str:
    return (
        "0x"
        + bytes(Account.sign_message(encode_defunct(text=message), private_key=key).signature).hex()
    )


def login(accounts: Accounts) -> str:
    message = accounts.challenge(TEST_ADDRESS)["message"]
    return str(accounts.verify(TEST_ADDRESS, sign(message))["accessToken"])


def test_challenge_message_embeds_nonce() -> None:
    ch = Accounts().challenge(TEST_ADDRESS)
    assert ch["nonce"] in ch["message"] and TEST_ADDRESS.lower() in ch["message"]


def test_valid_signature_gets_a_token_that_authenticates() -> None:
    accounts = Accounts()
    token = login(accounts)
    assert accounts.authenticate(f"Bearer {token}").address == TEST_ADDRESS.lower()


def test_signature_by_another_key_is_refused() -> None:
    accounts = Accounts()
    message = accounts.challenge(TEST_ADDRESS)["message"]
    other = "0x" + "11" * 32
    with pytest.raises(AuthFailed, match="does not match"):
        accounts.verify(TEST_ADDRESS, sign(message, other))


def test_garbage_signature_is_refused() -> None:
    accounts = Accounts()
    accounts.challenge(TEST_ADDRESS)
    with pytest.raises(AuthFailed, match="Invalid signature"):
        accounts.verify(TEST_ADDRESS, "0xdeadbeef")


def test_nonce_is_single_use() -> None:
    accounts = Accounts()
    message = accounts.challenge(TEST_ADDRESS)["message"]
    signature = sign(message)
    accounts.verify(TEST_ADDRESS, signature)
    with pytest.raises(AuthFailed, match="Nonce already used"):
        accounts.verify(TEST_ADDRESS, signature)


def test_a_replayed_signature_is_named_a_reused_nonce_even_with_a_new_challenge_pending() -> None:
    accounts = Accounts()
    old = sign(accounts.challenge(TEST_ADDRESS)["message"])
    accounts.verify(TEST_ADDRESS, old)
    accounts.challenge(TEST_ADDRESS)
    with pytest.raises(AuthFailed, match="Nonce already used"):
        accounts.verify(TEST_ADDRESS, old)


def test_verify_without_any_challenge_asks_for_one() -> None:
    with pytest.raises(AuthFailed, match="No pending challenge"):
        Accounts().verify(TEST_ADDRESS, sign("anything"))


def test_a_reused_nonce_is_still_refused_after_a_restore() -> None:
    accounts = Accounts()
    signature = sign(accounts.challenge(TEST_ADDRESS)["message"])
    accounts.verify(TEST_ADDRESS, signature)
    restored = Accounts()
    restored.load_json(accounts.to_json())
    with pytest.raises(AuthFailed, match="Nonce already used"):
        restored.verify(TEST_ADDRESS, signature)


def test_challenge_expires() -> None:
    clock = Clock()
    accounts = Accounts(nonce_ttl_s=60, clock=clock)
    message = accounts.challenge(TEST_ADDRESS)["message"]
    clock.now += 61
    with pytest.raises(AuthFailed, match="expired"):
        accounts.verify(TEST_ADDRESS, sign(message))


def test_token_expires_after_ttl() -> None:
    clock = Clock()
    accounts = Accounts(token_ttl_s=30, clock=clock)
    token = login(accounts)
    clock.now += 29
    accounts.authenticate(f"Bearer {token}")
    clock.now += 1
    with pytest.raises(AuthFailed, match="expired"):
        accounts.authenticate(f"Bearer {token}")


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer not-a-jwt"])
def test_missing_or_bad_token_refused(header: str | None) -> None:
    with pytest.raises(AuthFailed):
        Accounts().authenticate(header)


def test_expire_all_tokens_makes_issued_tokens_expired() -> None:
    accounts = Accounts()
    token = login(accounts)
    accounts.expire_all_tokens()
    with pytest.raises(AuthFailed, match="Token expired"):
        accounts.authenticate(f"Bearer {token}")


def test_a_token_signed_by_a_stranger_is_invalid_not_expired() -> None:
    accounts = Accounts()
    token = login(Accounts())
    accounts.expire_all_tokens()
    with pytest.raises(AuthFailed, match="Invalid token"):
        accounts.authenticate(f"Bearer {token}")


def test_state_round_trip_keeps_tokens_valid() -> None:
    accounts = Accounts()
    token = login(accounts)
    restored = Accounts()
    restored.load_json(accounts.to_json())
    assert restored.authenticate(f"Bearer {token}").address == TEST_ADDRESS.lower()
