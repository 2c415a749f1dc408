"""Messages said in the reader's language (catalog.said): English for logs and the command line, the message id
and values kept for a page to translate; nested messages and lists translated in turn; kept across pickling (a
worker's exception) and through a catalogue exception's str()."""
from __future__ import annotations

import pickle

from catalog.errors import CaseInvalid, CaseStateError
from catalog.said import Said, kept, listed, said_in, say, unkept

CHINESE = {"clerk": "档案管理员", "officer": "执法人员", "roles: {roles}": "角色：{roles}",
           "case {case} is open already": "案件 {case} 已处于办理中",
           "invalid case: {details}": "案件信息有误：{details}", "title is blank": "案件名称为空",
           "{what} is required": "必须填写{what}", "a reason for reopening": "重新开启的理由"}


def _zh(message: str) -> str:
    return CHINESE.get(message, message)


def test_a_message_is_english_text_that_keeps_its_id_and_values():
    said = say("case {case} is open already", case="AB-1")
    assert said == "case AB-1 is open already" and isinstance(said, str)
    assert (said.message, said.values) == ("case {case} is open already", {"case": "AB-1"})
    assert said_in(said, _zh) == "案件 AB-1 已处于办理中"
    assert said_in("plain text", _zh) == "plain text"  # what was not made with say stays as it is


def test_values_that_are_messages_or_lists_of_them_are_translated_in_turn():
    nested = say("{what} is required", what=say("a reason for reopening"))
    assert nested == "a reason for reopening is required"
    assert said_in(nested, _zh) == "必须填写重新开启的理由"
    refused = CaseInvalid([say("title is blank"), nested, "plain 1"])
    assert str(refused) == "invalid case: title is blank; a reason for reopening is required; plain 1"
    assert said_in(str(refused), _zh) == "案件信息有误：案件名称为空; 必须填写重新开启的理由; plain 1"


def test_a_catalogue_exception_gives_its_message_back_whole_and_pickling_keeps_it():
    error = CaseStateError(say("case {case} is open already", case="AB-1"))
    assert isinstance(str(error), Said) and said_in(str(error), _zh) == "案件 AB-1 已处于办理中"
    assert isinstance(f"{error}", Said)  # formatted alone it is still the message …
    assert not isinstance(f"refused: {error}", Said)  # … inside other text it is English text only
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(str(again), Said) and said_in(str(again), _zh) == "案件 AB-1 已处于办理中"
    assert str(CaseStateError("plain")) == "plain" and not isinstance(str(CaseStateError("plain")), Said)


def test_listed_says_items_with_commas_each_translated_and_survives_pickling():
    roles = say("roles: {roles}", roles=listed([say("clerk"), say("officer"), "x{y}"]))
    assert roles == "roles: clerk, officer, x{y}"  # a value is never read as a template
    assert said_in(roles, _zh) == "角色：档案管理员, 执法人员, x{y}"
    assert said_in(pickle.loads(pickle.dumps(roles)), _zh) == "角色：档案管理员, 执法人员, x{y}"
    assert listed([]) == "" and listed(["a", "b"], sep=" / ") == "a / b"
    asked: list[str] = []

    def translate(message: str) -> str:
        asked.append(message)
        return _zh(message)

    said_in(listed(["a", say("clerk")]), translate)
    assert asked == ["clerk"]  # the row's own template is never looked up (it is no message id)


def test_a_word_said_without_values_is_never_read_as_a_template():
    """A role or state typed or stored with braces is said as it is (it had crashed the refusal it was in)."""
    for word in ("{x}", "}", "a{0}", "%s{"):
        assert say(word) == word and said_in(say(word), _zh) == word
        assert said_in(say("roles: {roles}", roles=listed([say(word)])), _zh) == f"角色：{word}"


def test_a_message_kept_in_a_row_as_json_is_said_later_in_the_readers_language():
    """A job's error written by a worker is read by a page in Chinese or English (a JSON column round trip)."""
    import json

    required = say("{what} is required", what=say("title is blank"))
    said = say("roles: {roles}", roles=listed([say("clerk"), "x{y}", required]))
    back = unkept(json.loads(json.dumps(kept(said))))
    assert back == said and said_in(back, _zh) == said_in(said, _zh) == "角色：档案管理员, x{y}, 必须填写案件名称为空"
    assert kept("plain") is None
    nested = say("{problems}!", problems=[say("title is blank"), "b"])
    assert said_in(unkept(json.loads(json.dumps(kept(nested)))), _zh) == "案件名称为空; b!"
