"""The transcript: the provider's words kept for support, secrets never shown."""

from __future__ import annotations

import pytest

from sender.errors import AuthenticationError
from sender.transcript import Transcript


def failed_step(transcript: Transcript, error: Exception):
    transcript.fail("Authenticate", error)
    return transcript.steps[-1]


def test_a_failed_step_keeps_what_the_server_said():
    step = failed_step(
        Transcript(),
        AuthenticationError(
            "The server rejected the credentials.",
            code="535",
            provider_text="5.7.139 Authentication unsuccessful",
        ),
    )
    assert step.provider_text == "5.7.139 Authentication unsuccessful"
    assert step.code == "535"


def test_secrets_are_hidden_in_details_error_and_provider_text():
    transcript = Transcript(secrets=["hunter2-pw", "client-secret-value"])
    with pytest.raises(AuthenticationError), transcript.step("Authenticate") as step:
        step.details.append("tried hunter2-pw")
        raise AuthenticationError(
            "rejected client-secret-value", provider_text="535 bad password hunter2-pw"
        )
    [recorded] = transcript.steps
    assert recorded.details == ["tried [hidden]"]
    assert recorded.error == "rejected [hidden]"
    assert recorded.provider_text == "535 bad password [hidden]"


def test_a_secret_echoed_with_its_white_space_collapsed_is_hidden_too():
    transcript = Transcript(secrets=["two  spaces\tand tab"])
    step = failed_step(
        transcript, AuthenticationError("no", provider_text="535 got two spaces and tab")
    )
    assert step.provider_text == "535 got [hidden]"


def test_secrets_added_while_sending_are_hidden_from_then_on():
    transcript = Transcript()
    transcript.hide("access-token-abc")
    step = failed_step(transcript, AuthenticationError("no", provider_text="access-token-abc"))
    assert step.provider_text == "[hidden]"


def test_secrets_are_not_in_the_transcripts_repr():
    assert "hunter2" not in repr(Transcript(secrets=["hunter2"]))


def test_a_discarding_transcript_keeps_nothing():
    transcript = Transcript.discard()
    transcript.hide("secret")
    with transcript.step("Send message") as step:
        step.details.append("sent")
    assert transcript.steps == [] and transcript.secrets == set()
