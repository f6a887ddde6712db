"""Tests that pin the definitions of the classroom's LMS export, student identities and kept records (issue 45, item 5).

The grading layer runs these modules inside whole grading runs, which test paths; a one-line bug in a comparison, a
key or a format of ``lms.py``, ``identity.py`` or ``records.py`` could pass them all. Each test below states one
definition in words (its docstring) and checks it on small objects built here: CSV files in ``tmp_path``, term
gradebooks as dictionaries, identities from file names. No worker processes, no sandbox, no network.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pgcourse.classroom.grading import records
from pgcourse.classroom.grading.course import GradingError
from pgcourse.classroom.grading.identity import (
    Identity,
    _student_folder,
    attribute_files,
    environment_note,
    file_time,
    identity_of,
    identity_warnings,
    iso,
    nbgrader_timestamp,
    owners_of_files,
    parse_time,
    person_keys,
    problem_of,
    read_csv_rows,
    read_timestamps,
    students_of_files,
)
from pgcourse.classroom.grading.lms import (
    Roster,
    RosterEntry,
    _lms_rows,
    _one_line_per_user,
    canvas_csv,
    moodle_csv,
    name_keys,
    read_roster,
)

UTC = timezone.utc

CANVAS_ROSTER = ("Student,ID,SIS User ID,SIS Login ID,Section,HW1 (4321),HW2 (4322)\n"
                 "    Points Possible,,,,,10,10\n"
                 '"Jones, Carol",12346,S001,cjones,Sec A,,\n'
                 '"Lee, Bob",12347,S002,blee,=Sec B,,\n')
MOODLE_GRADEBOOK = ("First name,Last name,ID number,Email address\n"
                    "Carol,Jones,N1,Carol.J@X.edu\n"
                    "Bob,Lee,,bob@x.edu\n")
MOODLE_WORKSHEET = ("Identifier,Full name,Email address\n"
                    "Participant 123456,Alice Smith,alice1@x.edu\n"
                    "PARTICIPANT 123457,Alice Smith,alice2@x.edu\n")


def roster_of(tmp_path: Path, text: str, name: str = "roster.csv") -> Roster:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_roster(path)


def by_name(roster: Roster, name: str) -> RosterEntry:
    [entry] = [entry for entry in roster.entries if entry.name == name]
    return entry


def term_of(*students: dict, assignments=(("HW1", 10.0), ("HW2", 2.5))) -> dict:
    return {"assignments": [{"name": name, "max_points": points} for name, points in assignments],
            "students": list(students)}


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# ======================================================================================================================
# lms.py: name keys
# ======================================================================================================================
@pytest.mark.parametrize("text, keys", [
    ("Jones, Carol", {"jonescarol", "caroljones"}),
    ("Carol Jones", {"jonescarol", "caroljones"}),
    ("  CAROL   jones  ", {"jonescarol", "caroljones"}),
    ("jonescarol", {"jonescarol"}),
    ("carol.jones", {"caroljones", "jonescarol"}),          # . _ @ - and , separate words
    ("carol_jones", {"caroljones", "jonescarol"}),
    ("carol@jones", {"caroljones", "jonescarol"}),
    ("carol-jones", {"caroljones", "jonescarol"}),
    ("O'Neil Ann", {"oneilann", "annoneil"}),               # an apostrophe is dropped, not a separator
    ("Zoé Li", {"zoéli", "lizoé"}),                         # letters of any script are kept
    ("Ann2 Lee", {"ann2lee", "leeann2"}),                   # digits are kept
    ("ann ann", {"annann"}),
    ("", set()),
    ("  ", set()),
    (", . - _ @ !", set()),
])
def test_a_names_keys_are_its_lower_case_letters_and_digits_in_any_word_order(text, keys):
    """A name is matched on its words (letters and digits of any script, split at anything else; an apostrophe
    dropped, not a split; lower case), joined in every order: "Jones, Carol", "Carol Jones" and Canvas's
    "jonescarol" share "jonescarol". No words, no key."""
    assert name_keys(text) == keys


@pytest.mark.parametrize("words, count", [(1, 1), (2, 2), (3, 6), (4, 24), (5, 2), (6, 2)])
def test_a_name_of_up_to_four_words_has_every_order_and_a_longer_one_two(words, count):
    """Up to 4 words every order of them is a key (4! = 24); from 5 words only the words as written and reversed."""
    letters = "abcdef"[:words]
    keys = name_keys(" ".join(letters))
    assert len(keys) == count
    assert letters in keys and letters[::-1] in keys


# ======================================================================================================================
# lms.py: roster entries and the roster
# ======================================================================================================================
def test_a_roster_field_is_read_by_its_lower_case_name_stripped_the_first_non_empty_one():
    """``get`` looks up each named column (any case) in turn and returns the first non-blank value, stripped; "" if
    none has one."""
    entry = RosterEntry({"email address": "   ", "email": " ann@x.edu ", "id": "7"})
    assert entry.get("Email Address", "EMAIL") == "ann@x.edu"
    assert entry.get("id", "email") == "7"
    assert entry.get("missing") == "" and entry.get("email address") == "" and entry.get() == ""


@pytest.mark.parametrize("fields, name", [
    ({"student": "Jones, Carol", "full name": "F", "name": "N", "first name": "A"}, "Jones, Carol"),
    ({"student": " ", "full name": "Full Name", "name": "N"}, "Full Name"),
    ({"full name": "", "name": "Just Name", "first name": "A", "last name": "B"}, "Just Name"),
    ({"first name": "Carol", "last name": "Jones"}, "Carol Jones"),
    ({"first name": "Carol", "last name": " "}, "Carol"),
    ({"first name": "", "last name": "Jones"}, "Jones"),
    ({"email": "x@y"}, ""),
])
def test_a_roster_entrys_name_is_student_then_full_name_then_name_then_first_and_last(fields, name):
    """A row's name: the ``Student`` column, else ``Full name``, else ``Name``, else ``First name Last name`` (the
    parts that are there, one space between)."""
    assert RosterEntry(fields).name == name


@pytest.mark.parametrize("header, name, column", [
    (["Student", "HW2 (4321)"], "HW2", "HW2 (4321)"),
    (["Student", "HW2"], "HW2", "HW2"),
    (["HW2 (1)", "HW2 (2)"], "HW2", "HW2 (1)"),            # the first in the roster's order
    (["HW20 (5)", "HW2 (6)"], "HW2", "HW2 (6)"),           # a longer name is another assignment
    (["HW2 (4321)"], "HW20", "HW20"),
    (["HW2x1 (7)"], "HW2.1", "HW2.1"),                     # the name is literal text, not a pattern
    (["HW2.1 (7)"], "HW2.1", "HW2.1 (7)"),
    (["HW2 ()"], "HW2", "HW2"),                            # the id has digits
    (["HW2 (12a)"], "HW2", "HW2"),
    (["HW2(4321)"], "HW2", "HW2"),                         # one space before the id
    (["hw2 (4321)"], "HW2", "HW2"),                        # the name's case counts
    (["HW2 (4321) extra"], "HW2", "HW2"),                  # the whole column
    ([], "HW2", "HW2"),
])
def test_an_assignments_column_is_the_rosters_own_name_with_its_canvas_id(header, name, column):
    """An assignment's export column is the roster's column that is its name exactly or its name, a space and a
    Canvas id in parentheses (``HW2 (4321)``), the first such in the roster's order; else the name itself."""
    assert Roster([], header, "r.csv").assignment_header(name) == column


def test_reading_a_canvas_roster_skips_points_possible_and_the_test_student_and_keys_each_row(tmp_path):
    """A Canvas gradebook export: its ``Points Possible`` row and Canvas's ``Test Student`` are no students (either
    in any case, with spaces around, in the Student column); each row's keys are its student, SIS login and SIS user
    id (lower case) and its name's keys, never its Canvas ``ID``."""
    roster = roster_of(tmp_path, CANVAS_ROSTER + "  TEST STUDENT ,99999,,,,,\n")
    assert [entry.name for entry in roster.entries] == ["Jones, Carol", "Lee, Bob"]
    assert roster.header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW1 (4321)", "HW2 (4322)"]
    assert roster.source == str(tmp_path / "roster.csv")
    carol = roster.entries[0]
    assert carol.keys == {"jones, carol", "cjones", "s001", "jonescarol", "caroljones"}
    assert carol.fields["id"] == "12346" and carol.get("section") == "Sec A"


def test_only_the_student_column_can_skip_a_row_as_points_possible_or_test_student(tmp_path):
    """A person called "Test Student" in another column (a ``name`` column) is a student."""
    roster = roster_of(tmp_path, "name,email\nTest Student,t@x.edu\nPoints Possible,p@x.edu\n")
    assert [entry.name for entry in roster.entries] == ["Test Student", "Points Possible"]


def test_reading_a_moodle_roster_keys_rows_by_email_its_local_part_id_number_and_name(tmp_path):
    """A Moodle export's keys: the ``ID number``, the email and the email's part before ``@`` (lower case), the name
    made of First and Last name."""
    roster = roster_of(tmp_path, MOODLE_GRADEBOOK)
    carol, bob = roster.entries
    assert carol.name == "Carol Jones" and bob.name == "Bob Lee"
    assert carol.keys == {"n1", "carol.j@x.edu", "carol.j", "caroljones", "jonescarol"}
    assert bob.keys == {"bob@x.edu", "bob", "boblee", "leebob"}


def test_username_and_login_columns_are_keys_and_no_key_is_empty(tmp_path):
    """``username`` and ``login`` columns are keys too (lower case); an empty part (an email with nothing before
    ``@``) is never a key."""
    roster = roster_of(tmp_path, "student,username,login,email\nann,ANN1,Ann-L,A.N@x\nzed,,,@x.edu\n")
    ann, zed = roster.entries
    assert ann.keys == {"ann", "ann1", "ann-l", "a.n@x", "a.n"}
    assert zed.keys == {"zed", "@x.edu"} and "" not in zed.keys


def test_a_roster_header_is_stripped_and_its_columns_read_in_any_case(tmp_path):
    """Header cells are stripped of spaces; columns are found whatever their case."""
    roster = roster_of(tmp_path, " STUDENT , Email \nann,ann@x.edu\n")
    assert roster.header == ["STUDENT", "Email"]
    assert roster.fields == {"student", "email"}
    assert roster.entries[0].get("email") == "ann@x.edu" and roster.entries[0].name == "ann"


@pytest.mark.parametrize("text", ["", "\n\n", " , \n,,\n"])
def test_an_empty_roster_is_refused_naming_the_file(tmp_path, text):
    """A roster with no row (blank lines do not count) is a GradingError naming ``--roster`` and the file."""
    with pytest.raises(GradingError, match=r"--roster .*roster\.csv: the file is empty"):
        roster_of(tmp_path, text)


@pytest.mark.parametrize("column", ["Student", "ID", "Email address", "Email", "First name", "Full name", "Name",
                                    " student ", "EMAIL"])
def test_any_one_student_column_makes_a_roster(tmp_path, column):
    """A roster needs one of Student, ID, Email address, Email, First name, Full name, Name (any case)."""
    assert len(roster_of(tmp_path, f"{column},other\nx,y\n").entries) == 1


@pytest.mark.parametrize("header", ["Last name,Grade", "Identifier,Grade", "ID number,Grade", "Username", "Students"])
def test_a_roster_without_a_student_column_is_refused(tmp_path, header):
    """Without any of those columns (a Last name, Identifier, ID number or username alone is not enough) the roster
    is a GradingError that names the file and says what was expected."""
    with pytest.raises(GradingError, match=r"--roster .*roster\.csv: no student column; expected a Canvas"):
        roster_of(tmp_path, f"{header}\nx,y\n")


# ======================================================================================================================
# lms.py: matching a term student to one roster row
# ======================================================================================================================
def test_an_email_identity_matches_its_row_in_any_case_in_either_email_column(tmp_path):
    """An identity's email finds the row whose ``Email address`` (or ``Email``) is the same, case aside."""
    roster = roster_of(tmp_path, MOODLE_GRADEBOOK)
    assert roster.match("zzz", {"email": "CAROL.j@x.EDU"}).name == "Carol Jones"
    plain = roster_of(tmp_path, "student,email\nann,Ann@X.edu\nbea,bea@x.edu\n", "plain.csv")
    assert plain.match("zzz", {"email": "ann@x.edu"}).name == "ann"
    assert plain.match("zzz", {"email": "cid@x.edu"}) is None


def test_an_id_number_identity_matches_its_row_and_an_email_comes_first(tmp_path):
    """An ID number finds its row (exactly), but only when the identity has no email: an email that finds no row
    is not made up for by the ID number."""
    roster = roster_of(tmp_path, MOODLE_GRADEBOOK)
    assert roster.match("zzz", {"id_number": "N1"}).name == "Carol Jones"
    assert roster.match("zzz", {"id_number": "n1"}) is None
    assert roster.match("zzz", {"email": "nobody@x.edu", "id_number": "N1"}) is None
    assert roster.match("zzz", {}) is None


def test_two_rows_with_the_identitys_email_are_told_apart_by_name(tmp_path):
    """An email that two rows share finds neither by itself: the name decides (one row), else no match."""
    roster = roster_of(tmp_path, "student,email\nCarol Jones,same@x.edu\nBob Lee,SAME@x.edu\n")
    assert roster.match("zzz", {"email": "same@x.edu", "name": "Bob Lee"}).name == "Bob Lee"
    assert roster.match("zzz", {"email": "same@x.edu"}) is None
    assert [e.name for e in roster.candidates("zzz", {"email": "same@x.edu"})] == ["Carol Jones", "Bob Lee"]


def test_a_canvas_user_id_matches_the_rows_id_only_for_a_canvas_identity(tmp_path):
    """A Canvas download's user id finds the roster row with that ``ID``; a Moodle participant number that happens to
    be the same is no Canvas ID; an ID two rows share finds neither."""
    roster = roster_of(tmp_path, CANVAS_ROSTER)
    assert roster.match("zzz", {"lms": "canvas", "lms_id": "12347"}).name == "Lee, Bob"
    assert roster.match("zzz", {"lms": "moodle", "lms_id": "12347"}) is None
    assert roster.match("zzz", {"lms": "canvas", "lms_id": "99999"}) is None
    assert roster.match("zzz", {"lms": "canvas", "lms_id": ""}) is None
    twice = roster_of(tmp_path, "Student,ID\nAnn,5\nBea,5\n", "twice.csv")
    assert twice.match("zzz", {"lms": "canvas", "lms_id": "5"}) is None
    assert twice.match("bea", {"lms": "canvas", "lms_id": "5"}).name == "Bea"


def test_a_moodle_participant_number_matches_the_identifier_column_only_for_a_moodle_identity(tmp_path):
    """A Moodle download's participant number finds the worksheet row ``Participant <number>`` ("participant" in
    any case), which alone tells apart two participants with the same name; a Canvas id is no participant number."""
    roster = roster_of(tmp_path, MOODLE_WORKSHEET)
    first = roster.match("Alice Smith", {"lms": "moodle", "lms_id": "123456", "name": "Alice Smith"})
    second = roster.match("Alice Smith", {"lms": "moodle", "lms_id": "123457", "name": "Alice Smith"})
    assert (first.get("email address"), second.get("email address")) == ("alice1@x.edu", "alice2@x.edu")
    assert roster.match("Alice Smith", {"lms": "canvas", "lms_id": "123456", "name": "Alice Smith"}) is None
    assert roster.match("Alice Smith", {"lms": "moodle", "lms_id": "999", "name": "Alice Smith"}) is None
    twice = roster_of(tmp_path, "Identifier,Full name\nParticipant 1,Ann\nParticipant 1,Bea\n", "twice.csv")
    assert twice.match("zzz", {"lms": "moodle", "lms_id": "1"}) is None


@pytest.mark.parametrize("student, identity, name", [
    ("cjones", {}, "Jones, Carol"),                                # SIS login
    ("  S002 ", {}, "Lee, Bob"),                                   # SIS user id, stripped, any case
    ("jonescarol", {}, "Jones, Carol"),                            # Canvas's sortable name
    ("Carol.Jones!", {}, "Jones, Carol"),                          # the student id's letters and digits
    ("zzz", {"name": "Bob Lee"}, "Lee, Bob"),                      # the identity's name
    ("zzz", {"name": "Lee, Bob"}, "Lee, Bob"),
    ("12346", {}, None),                                           # the Canvas ID is no key
    ("zzz", {}, None),
    ("!!!", {}, None),                                             # nothing left: no match
])
def test_otherwise_a_student_is_matched_by_a_key_of_exactly_one_row(tmp_path, student, identity, name):
    """Failing an exact id, the student id (stripped, lower case), its letters and digits, and the keys of the
    identity's name are looked up among the rows' keys."""
    found = roster_of(tmp_path, CANVAS_ROSTER).match(student, identity)
    assert (found.name if found else None) == name


@pytest.mark.parametrize("student", [" Carol.J@X.edu ", "CAROL.J", "\tcarol.j\n"])
def test_a_student_id_with_punctuation_matches_an_email_key_once_stripped(tmp_path, student):
    """The student id itself (stripped of spaces, lower case) is a key: an email or its local part, whose letters and
    digits alone are no key, find the row."""
    assert roster_of(tmp_path, MOODLE_GRADEBOOK).match(student, {}).name == "Carol Jones"


def test_a_key_two_rows_share_is_no_match_but_both_are_candidates(tmp_path):
    """Two rows with the student's key are no match (the caller warns); both are candidates, so neither is taken for
    a student who handed in nothing."""
    roster = roster_of(tmp_path, "student,email\nCarol Jones,c1@x.edu\nJones Carol,c2@x.edu\nBob,b@x.edu\n")
    assert roster.match("caroljones", {}) is None
    assert [e.get("email") for e in roster.candidates("caroljones", {})] == ["c1@x.edu", "c2@x.edu"]


def test_candidates_are_every_row_any_rule_finds_each_once_in_order(tmp_path):
    """``candidates``: the rows of the exact id, of the Canvas ID (for a Canvas identity), of the participant number
    (for a Moodle identity) and of any key, each row once, in that order; none for a stranger."""
    roster = roster_of(tmp_path, "Student,ID,SIS User ID,Identifier,Email\nAnn,1,,Participant 7,a@x\n"
                                 "Bea,2,,,b@x\nCid,3,,,c@x\n")
    ann, bea, cid = roster.entries
    assert roster.candidates("cid", {"lms": "canvas", "lms_id": "2", "email": "a@x"}) == [ann, bea, cid]
    assert roster.candidates("ann", {"lms": "canvas", "lms_id": "1", "email": "a@x"}) == [ann]
    assert roster.candidates("zzz", {"lms": "moodle", "lms_id": "7"}) == [ann]
    assert roster.candidates("zzz", {"lms": "moodle", "lms_id": "2"}) == []
    assert roster.candidates("zzz", {"lms": "canvas", "lms_id": "7"}) == []
    assert roster.candidates("zzz", {"lms_id": "2"}) == []
    assert roster.candidates("zzz", {"lms": "", "lms_id": "7"}) == []
    assert roster.candidates("zzz", {"name": "Bea"}) == [bea]
    assert roster.candidates("zzz", {}) == []


# ======================================================================================================================
# lms.py: the student id of a roster row nobody handed in for
# ======================================================================================================================
def test_a_canvas_rows_student_is_its_sortable_name_with_its_canvas_id(tmp_path):
    """In a Canvas roster (it has a SIS column) a row with an ``ID`` is the student Canvas's downloads would name:
    the name's letters and digits, lower case, with identity (canvas, ID, name)."""
    roster = roster_of(tmp_path, CANVAS_ROSTER)
    assert roster.student_of(by_name(roster, "Jones, Carol")) == (
        "jonescarol", {"lms": "canvas", "lms_id": "12346", "name": "Jones, Carol"})


@pytest.mark.parametrize("header", ["Student,ID,SIS User ID", "Student,ID,SIS Login ID", "Student,ID,sis login id"])
def test_either_sis_column_makes_a_canvas_roster(tmp_path, header):
    """Either SIS column (any case) marks the roster as Canvas's."""
    roster = roster_of(tmp_path, f"{header}\n\"O'Neil, Ann-Marie 2\",555,x\n")
    assert roster.student_of(roster.entries[0]) == (
        "oneilannmarie2", {"lms": "canvas", "lms_id": "555", "name": "O'Neil, Ann-Marie 2"})


def test_a_canvas_row_without_a_name_is_its_canvas_id_and_one_without_an_id_is_no_canvas_student(tmp_path):
    """A nameless Canvas row is its ID; a row with no ID is read as any other roster's row."""
    roster = roster_of(tmp_path, "Student,ID,SIS User ID,Email\n!!!,555,,\nAnn Lee,,S9,ann@x.edu\n")
    nameless, no_id = roster.entries
    assert roster.student_of(nameless) == ("555", {"lms": "canvas", "lms_id": "555", "name": "!!!"})
    assert roster.student_of(no_id) == ("Ann Lee", {"name": "Ann Lee", "email": "ann@x.edu"})


def test_a_roster_with_an_id_but_no_sis_column_is_not_canvas(tmp_path):
    """An ``ID`` column alone does not make a Canvas roster: the row's student is its Student column."""
    roster = roster_of(tmp_path, "Student,ID\n\"Jones, Carol\",12346\n")
    assert roster.student_of(roster.entries[0]) == ("Jones, Carol", {"name": "Jones, Carol"})


def test_a_moodle_worksheet_rows_student_is_its_name_with_its_participant_number_and_email(tmp_path):
    """A worksheet row: its full name, identity (moodle, participant number, name, email)."""
    roster = roster_of(tmp_path, MOODLE_WORKSHEET)
    assert roster.student_of(roster.entries[1]) == (
        "Alice Smith", {"name": "Alice Smith", "lms": "moodle", "lms_id": "123457", "email": "alice2@x.edu"})


@pytest.mark.parametrize("row, found", [
    ("Carol,Jones,N1,c@x.edu", ("Carol Jones", {"name": "Carol Jones", "email": "c@x.edu"})),  # email, not ID number
    ("Carol,Jones,N1,", ("Carol Jones", {"name": "Carol Jones", "id_number": "N1"})),
    (",,N1,c@x.edu", ("c@x.edu", {"name": "", "email": "c@x.edu"})),
    (",,N1,", ("N1", {"name": "", "id_number": "N1"})),
    (",,,", ("", {"name": ""})),
])
def test_a_moodle_gradebook_rows_student_is_its_name_else_email_else_id_number(tmp_path, row, found):
    """The student id of a row without Canvas or participant ids: its Student column, else its name, else its email,
    else its ID number; its identity carries the email, or failing one the ID number."""
    roster = roster_of(tmp_path, f"First name,Last name,ID number,Email address,Group\n{row},G\nx,y,z,w,G\n")
    assert roster.student_of(roster.entries[0]) == found


# ======================================================================================================================
# lms.py: which term students are which rows, and who handed in nothing
# ======================================================================================================================
def test_without_a_roster_each_term_student_is_one_row_and_nothing_is_said():
    """No roster: one row per term student, no roster entry, no warning."""
    students = [{"student": "a", "scores": {}}, {"student": "b", "scores": {}}]
    assert _lms_rows(term_of(*students), None) == ([(students[0], None), (students[1], None)], [])


def test_a_term_student_no_single_row_matches_is_warned_about(tmp_path):
    """A term student no single roster row matches is exported without one, and a warning names them and the roster."""
    roster = roster_of(tmp_path, CANVAS_ROSTER)
    carol = {"student": "jonescarol", "identity": {"lms": "canvas", "lms_id": "12346"}, "scores": {"HW1": 1}}
    zed = {"student": "zed", "scores": {"HW1": 2}}
    rows, warnings = _lms_rows(term_of(carol, zed), roster)
    assert [(s["student"], e.name if e else None) for s, e in rows][:2] == [("jonescarol", "Jones, Carol"),
                                                                             ("zed", None)]
    assert f"'zed' matches no single student of --roster {roster.source}" in warnings


def test_a_roster_row_no_term_student_could_be_is_exported_with_nothing_and_named(tmp_path):
    """Each roster row that is no term student's candidate comes after the term's students, as a student of its
    own (``roster_only``, no scores), and one warning counts and names them."""
    roster = roster_of(tmp_path, CANVAS_ROSTER)
    carol = {"student": "jonescarol", "identity": {"lms": "canvas", "lms_id": "12346"}, "scores": {"HW1": 1}}
    rows, warnings = _lms_rows(term_of(carol), roster)
    assert rows[1] == ({"student": "leebob", "identity": {"lms": "canvas", "lms_id": "12347", "name": "Lee, Bob"},
                        "scores": {}, "roster_only": True}, by_name(roster, "Lee, Bob"))
    assert len(rows) == 2
    assert warnings == [f"1 student(s) of --roster {roster.source} have no grade in the term gradebook (no "
                        "submission): exported with 0 for every assignment: Lee, Bob"]


def test_a_row_that_an_unmatched_student_could_be_is_not_a_non_submitter(tmp_path):
    """Rows that are candidates of a student no single row matches are not exported as handing in nothing."""
    roster = roster_of(tmp_path, "student,email\nCarol Jones,c1@x.edu\nJones Carol,c2@x.edu\n")
    rows, warnings = _lms_rows(term_of({"student": "caroljones", "scores": {"HW1": 3}}), roster)
    assert len(rows) == 1 and rows[0][1] is None
    assert warnings == [f"'caroljones' matches no single student of --roster {roster.source}"]


def test_a_nameless_non_submitter_is_named_by_their_student_id(tmp_path):
    """A non-submitter with no name is named in the warning by their student id (here the email)."""
    roster = roster_of(tmp_path, "Student,Email\n,x@y.edu\n")
    _, warnings = _lms_rows(term_of(), roster)
    assert warnings[0].endswith("exported with 0 for every assignment: x@y.edu")


@pytest.mark.parametrize("count", [1, 10, 11, 12])
def test_the_non_submitters_warning_names_ten_then_an_ellipsis(tmp_path, count):
    """The warning counts every non-submitter and names the first ten, with " …" after them when there are more."""
    names = [f"Student{n:02d}" for n in range(count)]
    roster = roster_of(tmp_path, "Student\n" + "".join(f"{n}\n" for n in names))
    rows, [warning] = _lms_rows(term_of(), roster)
    assert len(rows) == count
    listed = ", ".join(names[:10]) + (" …" if count > 10 else "")
    assert warning.startswith(f"{count} student(s) of --roster") and warning.endswith(f"assignment: {listed}")


# ======================================================================================================================
# lms.py: one line per LMS user
# ======================================================================================================================
ASSIGNMENTS = [{"name": "HW1", "max_points": 10}, {"name": "HW2", "max_points": 5}]


def test_one_student_is_one_line_of_their_cells_then_each_assignments_score():
    """A user's line: their cells, then each assignment's score in the term's order (an integral score as an int,
    others rounded to 6 places, a missing one 0, a None blank)."""
    found = [("k1", {"student": "a", "scores": {"HW2": 2.0, "HW1": 7.25}}, ["A", "1"]),
             ("k2", {"student": "b", "scores": {"HW1": 1 / 3, "HW2": None}}, ["B", "2"]),
             ("k3", {"student": "c", "scores": {}}, ["C", "3"])]
    lines, warnings = _one_line_per_user("Canvas", found, ASSIGNMENTS)
    assert lines == [["A", "1", 7.25, 2], ["B", "2", 0.333333, ""], ["C", "3", 0, 0]]
    assert type(lines[0][3]) is int
    assert warnings == ["no submission, exported as 0: HW1: c; HW2: c"]


def test_two_students_of_one_user_graded_in_different_assignments_are_one_line_and_a_warning():
    """Term students with one LMS key whose grades are for different assignments are one line (the first one's cells,
    both grades) and a warning names them."""
    found = [("ID 1", {"student": "a", "scores": {"HW1": 4}}, ["A"]),
             ("ID 2", {"student": "z", "scores": {"HW1": 9}}, ["Z"]),
             ("ID 1", {"student": "b", "scores": {"HW2": 3}}, ["B"])]
    lines, warnings = _one_line_per_user("Canvas", found, ASSIGNMENTS)
    assert lines == [["A", 4, 3], ["Z", 9, 0]]
    assert warnings[0] == ("'a', 'b' are one student for Canvas (ID 1), graded in different assignments: exported "
                           "as one line")
    assert warnings[1] == "no submission, exported as 0: HW2: z"


def test_two_students_of_one_user_with_a_grade_for_one_assignment_stop_the_export():
    """Two term students the LMS takes for one user who each have a grade for the same assignment are two people the
    roster does not tell apart: a GradingError names them, the key and the assignments (sorted)."""
    found = [("email a@x", {"student": "a", "scores": {"HW2": 1, "HW1": 4}}, ["A"]),
             ("email a@x", {"student": "b", "scores": {"HW2": 3, "HW1": 5}}, ["B"])]
    with pytest.raises(GradingError, match=re.escape("the Moodle export cannot tell whose grade is whose: a, b are one "
                                                     "student for Moodle (email a@x) and have each a grade for HW1, "
                                                     "HW2. They are two people")):
        _one_line_per_user("Moodle", found, ASSIGNMENTS)


def test_the_assignments_two_students_of_one_user_were_both_graded_in_are_named_in_sorted_order():
    """The clash names every assignment both have a grade for, in sorted order (not the order of a set)."""
    names = [f"HW{n}" for n in "hgfedcba"]
    found = [("ID 1", {"student": s, "scores": {name: 1 for name in names}}, [s]) for s in ("a", "b")]
    with pytest.raises(GradingError, match=re.escape("have each a grade for HWa, HWb, HWc, HWd, HWe, HWf, HWg, HWh. ")):
        _one_line_per_user("Canvas", found, [{"name": name, "max_points": 1} for name in names])


def test_a_grade_wins_over_a_no_submission_of_the_same_user_in_either_order():
    """A "no submission" is no grade: it neither clashes with nor replaces a grade of the same user under another id."""
    no_sub = {"student": "a", "scores": {"HW1": 0}, "no_submission": ["HW1"]}
    graded = {"student": "b", "scores": {"HW1": 6}}
    for pair in ([no_sub, graded], [graded, no_sub]):
        lines, warnings = _one_line_per_user("Canvas", [("ID 1", s, [s["student"]]) for s in pair], ASSIGNMENTS[:1])
        assert lines == [[pair[0]["student"], 6]]
        assert not any("no submission" in w for w in warnings)


def test_a_no_submission_is_exported_as_zero_and_named_per_assignment():
    """A student marked "no submission" for an assignment is exported with 0 for it (not their recorded score) and
    named under it; the warning lists assignments in sorted order, the students of one merged line joined by " / "."""
    found = [("k1", {"student": "a", "scores": {"HW2": 2, "HW1": 0.5}, "no_submission": ("HW1",)}, ["A"]),
             ("k2", {"student": "c", "scores": {"HW1": 1}}, ["C"]),
             ("k2", {"student": "d", "scores": {}}, ["D"])]
    lines, warnings = _one_line_per_user("Canvas", found, ASSIGNMENTS)
    assert lines == [["A", 0, 2], ["C", 1, 0]]
    assert warnings[-1] == "no submission, exported as 0: HW1: a; HW2: c / d"


def test_roster_only_students_are_not_named_again_as_non_submitters():
    """Students known only from the roster (said in their own warning) are not listed under "no submission"."""
    found = [("k1", {"student": "r", "scores": {}, "roster_only": True}, ["R"])]
    assert _one_line_per_user("Canvas", found, ASSIGNMENTS) == ([["R", 0, 0]], [])
    found.append(("k1", {"student": "s", "scores": {"HW1": 1}}, ["S"]))  # merged with a term student: said
    lines, warnings = _one_line_per_user("Canvas", found, ASSIGNMENTS)
    assert lines == [["R", 1, 0]] and warnings[-1] == "no submission, exported as 0: HW2: r / s"


def test_the_no_submission_warning_lists_the_assignments_in_sorted_order_whatever_the_terms():
    """The assignments of the "no submission" warning are sorted by name, not in the term's order."""
    found = [("k1", {"student": "a", "scores": {}}, ["A"])]
    _, warnings = _one_line_per_user("Canvas", found, [{"name": "B", "max_points": 1}, {"name": "A", "max_points": 1}])
    assert warnings == ["no submission, exported as 0: A: a; B: a"]


@pytest.mark.parametrize("count", [10, 11])
def test_the_no_submission_warning_names_ten_per_assignment_then_an_ellipsis(count):
    """Under each assignment the first ten are named, then " …" if there are more."""
    found = [(f"k{n}", {"student": f"s{n:02d}", "scores": {}}, []) for n in range(count)]
    _, [warning] = _one_line_per_user("Canvas", found, ASSIGNMENTS[:1])
    names = ", ".join(f"s{n:02d}" for n in range(10))
    assert warning == f"no submission, exported as 0: HW1: {names}" + (" …" if count > 10 else "")


# ======================================================================================================================
# lms.py: the Canvas and Moodle files
# ======================================================================================================================
CAROL_CANVAS = {"student": "jonescarol", "identity": {"lms": "canvas", "lms_id": "12346"},
                "scores": {"HW1": 7.5, "HW2": 2.0}}
BOB_CANVAS = {"student": "leebob", "identity": {"lms": "canvas", "lms_id": "12347"}, "scores": {"HW1": 10.0}}


def test_a_canvas_import_has_the_rosters_ids_columns_a_points_row_and_a_line_per_student(tmp_path):
    """Canvas: Student, ID, SIS User ID, SIS Login ID, Section, then the roster's assignment columns; a ``Points
    Possible`` row; each student's line from their roster row (text cells safe from formulas)."""
    text, warnings = canvas_csv(term_of(CAROL_CANVAS, BOB_CANVAS), roster_of(tmp_path, CANVAS_ROSTER))
    assert text == ("Student,ID,SIS User ID,SIS Login ID,Section,HW1 (4321),HW2 (4322)\n"
                    "Points Possible,,,,,10,2.5\n"
                    '"Jones, Carol",12346,S001,cjones,Sec A,7.5,2\n'
                    "\"Lee, Bob\",12347,S002,blee,'=Sec B,10,0\n")
    assert warnings == ["no submission, exported as 0: HW2: leebob"]


def test_a_canvas_import_without_a_roster_uses_the_download_ids_and_names():
    """Without a roster: the assignment names as columns, the Canvas id from the download name, the identity's name
    (else the student id) as the student, SIS and section blank."""
    carol = {**CAROL_CANVAS, "identity": {**CAROL_CANVAS["identity"], "name": "=Carol"}}
    text, warnings = canvas_csv(term_of(carol, BOB_CANVAS), None)
    assert rows_of(text) == [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW1", "HW2"],
                             ["Points Possible", "", "", "", "", "10", "2.5"],
                             ["'=Carol", "12346", "", "", "", "7.5", "2"],
                             ["leebob", "12347", "", "", "", "10", "0"]]


def test_a_canvas_lines_student_is_the_rosters_name_before_the_identitys(tmp_path):
    """The Student cell is the roster row's name when there is a row, even if the identity has another name."""
    carol = {**CAROL_CANVAS, "identity": {**CAROL_CANVAS["identity"], "name": "Carol J."}}
    text, _ = canvas_csv(term_of(carol, BOB_CANVAS), roster_of(tmp_path, CANVAS_ROSTER))
    assert rows_of(text)[2][0] == "Jones, Carol"


def test_a_canvas_import_takes_the_rosters_id_over_the_download_id(tmp_path):
    """The roster row's ``ID`` is the line's ID even when the download named another id (the row matched by name)."""
    roster = roster_of(tmp_path, CANVAS_ROSTER)
    carol = {"student": "cjones", "identity": {"lms": "canvas", "lms_id": "99999"}, "scores": {"HW1": 1}}
    text, _ = canvas_csv(term_of(carol), roster)
    assert rows_of(text)[2][:4] == ["Jones, Carol", "12346", "S001", "cjones"]


def test_a_canvas_import_refuses_students_with_neither_canvas_nor_sis_id():
    """Canvas finds a student only by Canvas ID or SIS id: students with none (a Moodle id is none) stop the export,
    counted and named (the first six, then " …")."""
    moodle = {"student": "Alice", "identity": {"lms": "moodle", "lms_id": "5"}, "scores": {}}
    with pytest.raises(GradingError, match=r"Canvas needs each student's Canvas ID or SIS id, and 1 student\(s\) have "
                                           r"none \(Alice\): give --roster"):
        canvas_csv(term_of(moodle, CAROL_CANVAS), None)
    six = [{"student": f"s{n}", "scores": {}} for n in range(6)]
    with pytest.raises(GradingError, match=r"and 6 student\(s\) have none \(s0, s1, s2, s3, s4, s5\): give"):
        canvas_csv(term_of(*six), None)
    with pytest.raises(GradingError, match=r"and 7 student\(s\) have none \(s0, s1, s2, s3, s4, s5 …\): give"):
        canvas_csv(term_of(*six, {"student": "s6", "scores": {}}), None)


@pytest.mark.parametrize("rows, key", [
    ("Ann,1,S1,a\nBea,2,S1,b\n", None),                   # two Canvas IDs: two users, whatever the SIS ids
    ("Ann,,S1,a\nBea,,S1,b\n", "SIS User ID S1"),        # no ID: the SIS user id
    ("Ann,,,a\nBea,,,a\n", "SIS Login ID a"),             # no ID nor SIS user id: the SIS login
    ("Ann,,S1,a\nBea,,S2,a\n", None),
])
def test_canvas_takes_students_for_one_user_by_id_then_sis_user_id_then_sis_login(tmp_path, rows, key):
    """Canvas's user of a line is its ID, else its SIS User ID, else its SIS Login ID: two students with the same one
    (and a grade for one assignment each) stop the export naming it; different ones are two lines."""
    roster = roster_of(tmp_path, "Student,ID,SIS User ID,SIS Login ID\n" + rows)
    term = term_of({"student": "ann", "scores": {"HW1": 1}}, {"student": "bea", "scores": {"HW1": 2}})
    if key is None:
        assert len(rows_of(canvas_csv(term, roster)[0])) == 4
    else:
        with pytest.raises(GradingError, match=re.escape(f"ann, bea are one student for Canvas ({key})")):
            canvas_csv(term, roster)


def test_a_moodle_import_has_email_id_number_and_name_then_the_assignments_and_says_the_maxima(tmp_path):
    """Moodle: Email address, ID number, Full name, then one column per assignment (its name), no points row; the
    last warning gives each grade item's maximum."""
    carol = {"student": "Carol Jones", "identity": {"lms": "moodle", "lms_id": "1", "name": "Carol Jones"},
             "scores": {"HW1": 7.5, "HW2": 2.0}}
    bob = {"student": "Bob Lee", "identity": {"lms": "moodle", "lms_id": "2", "name": "Bob Lee"},
           "scores": {"HW1": 10.0}}
    text, warnings = moodle_csv(term_of(carol, bob), roster_of(tmp_path, MOODLE_GRADEBOOK))
    assert text == ("Email address,ID number,Full name,HW1,HW2\n"
                    "Carol.J@X.edu,N1,Carol Jones,7.5,2\n"
                    "bob@x.edu,,Bob Lee,10,0\n")
    assert warnings == ["no submission, exported as 0: HW2: Bob Lee",
                        "Moodle: set each grade item's maximum to HW1 10, HW2 2.5 (Moodle takes no points-possible "
                        "row)"]


def test_a_moodle_import_needs_an_email_or_id_number_from_the_roster():
    """Moodle finds a student by email or ID number, which only a roster gives: without one the export stops, counted
    and named (six, then " …")."""
    students = [{"student": f"s{n}", "identity": {"lms": "moodle", "lms_id": str(n), "name": f"s{n}"}, "scores": {}}
                for n in range(7)]
    with pytest.raises(GradingError, match=r"Moodle finds a student by email or ID number, and 6 student\(s\) have "
                                           r"neither \(s0, s1, s2, s3, s4, s5\): give --roster"):
        moodle_csv(term_of(*students[:6]), None)
    with pytest.raises(GradingError, match=r"and 7 student\(s\) have neither \(s0, s1, s2, s3, s4, s5 …\)"):
        moodle_csv(term_of(*students), None)


def test_moodle_takes_students_for_one_user_by_email_in_any_case_else_id_number(tmp_path):
    """Moodle's user is the email (case aside), else the ID number: two students with one, graded in different
    assignments, are one line (the first's cells); with a grade each for one assignment, an error naming the key."""
    roster = roster_of(tmp_path, "student,email address,id number\nAnn One,A@x.edu,\nAnn Two,a@X.EDU,\n"
                                 "Bea One,,7\nBea Two,,7\nCid,,8\n")
    split = term_of({"student": "Ann One", "scores": {"HW1": 1}}, {"student": "Ann Two", "scores": {"HW2": 2}},
                    {"student": "Cid", "scores": {"HW1": 3, "HW2": 1}})
    text, warnings = moodle_csv(split, roster)
    assert rows_of(text)[1:] == [["A@x.edu", "", "Ann One", "1", "2"], ["", "8", "Cid", "3", "1"],
                                 ["", "7", "Bea One", "0", "0"]]  # two roster rows nobody handed in for: one user
    assert "'Ann One', 'Ann Two' are one student for Moodle (email a@x.edu), graded in different" in "\n".join(warnings)
    both = term_of({"student": "Bea One", "scores": {"HW1": 1}}, {"student": "Bea Two", "scores": {"HW1": 2}})
    with pytest.raises(GradingError, match=re.escape("Bea One, Bea Two are one student for Moodle (ID number 7)")):
        moodle_csv(both, roster)


def test_a_moodle_line_is_named_by_the_roster_else_the_identity_else_the_student(tmp_path):
    """The Full name cell: the roster row's name, else the identity's name, else the student id (safe from
    formulas)."""
    roster = roster_of(tmp_path, "email,student\nx@y.edu,\n")
    for identity, name in (({"name": "+Zed", "email": "x@y.edu"}, "'+Zed"), ({"email": "x@y.edu"}, "'-z")):
        text, _ = moodle_csv(term_of({"student": "-z", "identity": identity, "scores": {}}), roster)
        assert rows_of(text)[1][:3] == ["x@y.edu", "", name]


# ======================================================================================================================
# identity.py: student ids from file names
# ======================================================================================================================
@pytest.mark.parametrize("entry, expected", [
    ("jonescarol_12346_789_02_reinforce.ipynb", ("jonescarol", "canvas", "12346", False, 789, "02_reinforce")),
    ("jonescarol_LATE_12346_789_02_reinforce.ipynb", ("jonescarol", "canvas", "12346", True, 789, "02_reinforce")),
    ("jonescarol_12346_789_02-1.ipynb", ("jonescarol", "canvas", "12346", False, 789, "02-1")),
    ("bob_1234_5_x", ("bob", "canvas", "1234", False, 5, "x")),                     # 4 digits: a Canvas id
    ("bob_123_5_x.ipynb", ("bob_123_5_x", "", "", False, 0, "")),                   # 3: not one
    ("jonescarol_12346.ipynb", ("jonescarol", "canvas", "12346", False, 0, "")),    # without attachment and rest
    ("jonescarol_LATE_12346_x.ipynb", ("jonescarol", "canvas", "12346", True, 0, "x")),
    ("jonescarol_late_12346_7_x.ipynb", ("jonescarol_late_12346_7_x", "", "", False, 0, "")),  # LATE in capitals
    ("Jonescarol_12346_789_x.ipynb", ("Jonescarol_12346_789_x", "", "", False, 0, "")),  # Canvas names: lower case
    ("alice_1234_5678_Bob_99_assignsubmission_file_x.ipynb",
     ("alice", "canvas", "1234", False, 5678, "Bob_99_assignsubmission_file_x")),  # Canvas's full name first
    ("alice.ipynb", ("alice", "", "", False, 0, "")),
    ("alice.IPYNB", ("alice.IPYNB", "", "", False, 0, "")),
    ("alice.ipynb.ipynb", ("alice.ipynb", "", "", False, 0, "")),
    (".ipynb", (".ipynb", "", "", False, 0, "")),
    ("alice", ("alice", "", "", False, 0, "")),
    ("bob_01_reinforce.ipynb", ("bob_01_reinforce", "", "", False, 0, "")),
])
def test_a_canvas_download_name_gives_the_sortable_name_user_id_late_flag_and_upload(entry, expected):
    """Canvas: ``name[_LATE]_userid[_attachment]_rest`` with a lower-case name and a user id of 4 digits or more; the
    attachment id (a later upload's is larger) and what follows are kept. Anything else is the name without
    ``.ipynb``."""
    found = identity_of(entry)
    assert (found.student, found.lms, found.lms_id, found.late_flag, found.upload, found.rest) == expected
    assert found.name == ""


@pytest.mark.parametrize("first", ["2025", "1", "ch02", "hw1", "ps3", "week4", "lab5", "ex6", "assignment7",
                                   "exercise8", "hw12"])
@pytest.mark.parametrize("full", [True, False])
def test_a_canvas_like_name_whose_first_field_is_an_assignments_is_a_plain_name(first, full):
    """A first field that is an assignment's (digits, optionally after ch, hw, ps, week, lab, ex, assignment or
    exercise) is no person's sortable name: the whole name is the student id."""
    stem = f"{first}_2025_7_alice" if full else f"{first}_2025_alice"
    assert (identity_of(stem + ".ipynb").student, identity_of(stem + ".ipynb").lms) == (stem, "")


@pytest.mark.parametrize("first", ["hwx", "alice2", "hw1a", "xhw1", "chapter2", "h2", "lab", "ex", "week", "hw"])
def test_a_first_field_that_only_looks_like_an_assignment_is_a_name(first):
    """Only the whole field counts as an assignment's (with its digits): ``hw1a``, ``alice2``, ``lab`` and the like
    are names."""
    full, short = identity_of(f"{first}_2025_7_x.ipynb"), identity_of(f"{first}_2025_x.ipynb")
    assert (full.student, full.lms, full.upload, full.rest) == (first, "canvas", 7, "x")
    assert (short.student, short.lms, short.upload, short.rest) == (first, "canvas", 0, "x")


@pytest.mark.parametrize("entry, student, number", [
    ("Alice Smith_123456_assignsubmission_file_02.ipynb", "Alice Smith", "123456"),
    ("Alice Smith_123456_assignsubmission_file_", "Alice Smith", "123456"),           # a folder
    ("Alice Smith_1_assignsubmission_onlinetext_x.ipynb", "Alice Smith", "1"),       # any number of digits
    ("Mary_Ann Lee_12_assignsubmission_file_x.ipynb", "Mary_Ann Lee", "12"),
    ("alice_1234_assignsubmission_file_x.ipynb", "alice", "1234"),                   # Moodle before Canvas's short name
    ("José Núñez_7_assignsubmission_file_a.ipynb", "José Núñez", "7"),
])
def test_a_moodle_download_name_gives_the_name_and_participant_number(entry, student, number):
    """Moodle: ``Name_number_assignsubmission_file_…`` (or ``onlinetext``): the student is the name (shortest before
    ``_number_assignsubmission``), which is also the identity's name."""
    found = identity_of(entry)
    assert (found.student, found.lms, found.lms_id, found.name) == (student, "moodle", number, student)


@pytest.mark.parametrize("entry", ["Alice_12_assignsubmission_other_x.ipynb", "Alice_x_assignsubmission_file_a",
                                   "_12_assignsubmission_file_a"])
def test_a_name_that_is_not_quite_moodles_is_a_plain_name(entry):
    """Another submission plugin, a non-numeric participant or no name is no Moodle download name."""
    assert identity_of(entry).lms == ""


@pytest.mark.parametrize("identity, found", [
    (Identity("s"), {}),
    (Identity("s", "canvas", "12", late_flag=False), {"lms": "canvas", "lms_id": "12"}),
    (Identity("s", "canvas", "12", late_flag=True), {"lms": "canvas", "lms_id": "12", "late_flag": True}),
    (Identity("s", "moodle", "7", "Ann"), {"lms": "moodle", "lms_id": "7", "name": "Ann"}),
    (Identity("s", upload=5, namesake=True, named_for="b", rest="r"), {}),
])
def test_an_identity_in_json_keeps_only_its_lms_id_name_and_a_true_late_flag(identity, found):
    """The gradebook keeps an identity's LMS, LMS id and name when not empty, and the late flag only when set."""
    assert identity.to_json() == found


@pytest.mark.parametrize("text, keys", [
    ("Carol Jones", {"caroljones", "jonescarol"}),
    ("Jones, Carol", {"caroljones", "jonescarol"}),
    ("jonescarol", {"jonescarol"}),
    ("carol_jones", {"caroljones", "jonescarol"}),                 # _ separates words
    ("José Núñez", {"josénúñez", "núñezjosé"}),                     # any script
    ("STRASSE Straße", {"strassestrasse"}),                         # case-folded
    ("a b c d e", {"abcde", "edcba"}),
    ("", set()),
    (" _-", set()),
])
def test_a_persons_keys_are_their_case_folded_words_of_any_script_in_any_order(text, keys):
    """A person is matched on their words (letters and digits of any script; anything else separates), case-folded,
    every order joined (from 5 words: as written and reversed)."""
    assert person_keys(text) == keys


def test_four_words_give_every_order():
    """Four words: all 24 orders."""
    assert len(person_keys("a b c d")) == 24 and "dcab" in person_keys("a b c d")


# ======================================================================================================================
# identity.py: whose each file is
# ======================================================================================================================
def touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_files_given_one_by_one_are_their_names_at_the_top_and_their_folders_below(tmp_path):
    """A file directly in the files' common folder is its name's student (not in a student's folder); a file below it
    is the student of the first folder below it (in that student's folder)."""
    alice = touch(tmp_path / "submitted" / "alice.ipynb")
    bob = touch(tmp_path / "submitted" / "bob" / "deep" / "carol.ipynb")
    found = owners_of_files([alice, bob], ["02"])
    assert [(owner.student, inside) for owner, inside in found] == [("alice", False), ("bob", True)]
    assert owners_of_files([], ["02"]) == []


def test_relative_paths_are_read_from_the_working_folder(tmp_path, monkeypatch):
    """Paths are made absolute from the working folder before their common folder is found."""
    touch(tmp_path / "submitted" / "alice.ipynb")
    touch(tmp_path / "submitted" / "bob" / "x.ipynb")
    monkeypatch.chdir(tmp_path)
    found = owners_of_files([Path("submitted/alice.ipynb"), Path("submitted/bob/x.ipynb")], [])
    assert [(owner.student, inside) for owner, inside in found] == [("alice", False), ("bob", True)]


def test_files_of_an_nbgrader_assignment_folder_are_the_student_folders_above_it(tmp_path):
    """When the common folder holds ``timestamp.txt`` (nbgrader's assignment folder), every file is the student's
    whose folder is above it, skipping assignment folders."""
    folder = tmp_path / "submitted" / "carol" / "hw2" / "ch02"
    touch(folder / "timestamp.txt", "2025-03-07 10:00:00 UTC")
    files = [touch(folder / "a.ipynb"), touch(folder / "b.ipynb")]
    assert [(owner.student, inside) for owner, inside in owners_of_files(files, [])] == [("carol", True)] * 2


def test_a_file_named_like_the_chapter_is_the_student_of_its_folder(tmp_path):
    """A lone file named as a chapter is never a student: it is the student of the first non-assignment folder above
    it; a file with another name is its own name's student."""
    chapter = touch(tmp_path / "submitted" / "dave" / "hw2" / "02_reinforce.ipynb")
    assert [(o.student, inside) for o, inside in owners_of_files([chapter], ["02_reinforce"])] == [("dave", True)]
    other = touch(tmp_path / "submitted" / "dave" / "hw2" / "notes.ipynb")
    assert [(o.student, inside) for o, inside in owners_of_files([other], ["02_reinforce"])] == [("notes", False)]


@pytest.mark.parametrize("below, chapters, student", [
    ("alice/hw2/02", (), "alice"),
    ("alice/ch3", (), "alice"),
    ("alice/ps4", (), "alice"),
    ("alice/week5", (), "alice"),
    ("alice/2025", (), "alice"),
    ("alice/reinforce", ("reinforce",), "alice"),
    ("alice/reinforce", (), "reinforce"),
    ("alice/hw2x", (), "hw2x"),                          # digits alone after the prefix
    ("alice/2025b", (), "2025b"),
    ("alice", (), "alice"),
])
def test_the_student_folder_is_the_first_that_is_no_assignments(tmp_path, below, chapters, student):
    """Walking up from a folder, an assignment folder (one with ``timestamp.txt``, a chapter's name, or digits
    after ch, hw, ps, week or nothing) is skipped; the first other folder is the student's."""
    folder = tmp_path / below
    folder.mkdir(parents=True)
    assert _student_folder(folder, set(chapters)).name == student


def test_a_folder_with_timestamp_txt_is_skipped_and_the_root_ends_the_walk(tmp_path):
    """A folder holding ``timestamp.txt`` is an assignment's, whatever its name; the walk stops at the file system's
    root."""
    touch(tmp_path / "alice" / "mine" / "timestamp.txt")
    assert _student_folder(tmp_path / "alice" / "mine", set()) == tmp_path / "alice"
    assert _student_folder(Path("/"), {""}) == Path("/")


# ======================================================================================================================
# identity.py: one class read together
# ======================================================================================================================
def owned(*triples: tuple[str, str, bool]) -> list[tuple[Identity, Path, bool]]:
    """(owner entry, file path, inside) -> (identity_of(owner), Path, inside)."""
    return [(identity_of(owner), Path(path), inside) for owner, path, inside in triples]


def test_moodle_participants_sharing_a_name_become_name_and_number():
    """Two Moodle participants of one name (different numbers) are ``Name_number`` each and marked namesakes; two
    files of one participant, a participant alone and a non-Moodle student of that name are unchanged."""
    found = attribute_files(owned(("Alice Smith_1_assignsubmission_file_", "d/Alice Smith_1_assignsubmission_file_/a",
                                   True),
                                  ("Alice Smith_2_assignsubmission_file_x.ipynb", "d/x.ipynb", False),
                                  ("Alice Smith_2_assignsubmission_file_y.ipynb", "d/y.ipynb", False),
                                  ("Bob Lee_3_assignsubmission_file_y.ipynb", "d/z.ipynb", False),
                                  ("Bob Lee_3_assignsubmission_file_w.ipynb", "d/w.ipynb", False),
                                  ("Alice Smith", "d/Alice Smith/q.ipynb", True)))
    assert [(i.student, i.namesake) for i in found] == [("Alice Smith_1", True), ("Alice Smith_2", True),
                                                        ("Alice Smith_2", True), ("Bob Lee", False),
                                                        ("Bob Lee", False), ("Alice Smith", False)]


def test_only_moodle_participants_are_namesakes():
    """A Canvas student and a Moodle participant with one student id are not namesakes: the Moodle one keeps it."""
    found = attribute_files(owned(("alice_1234_1_x.ipynb", "d/a.ipynb", False),
                                  ("alice_5_assignsubmission_file_x.ipynb", "d/b.ipynb", False)))
    assert [(i.student, i.lms, i.namesake) for i in found] == [("alice", "canvas", False), ("alice", "moodle", False)]


def test_a_file_named_for_moodle_namesakes_names_the_first_by_their_shared_name():
    """A student's keys are those of their id and of their name: a file named with the name two Moodle namesakes
    share (their ids are ``Name_number``) names the first of them."""
    found = attribute_files(owned(("Alice Smith_1_assignsubmission_file_x.ipynb", "d/x.ipynb", False),
                                  ("Alice Smith_2_assignsubmission_file_y.ipynb", "d/y.ipynb", False),
                                  ("mallory", "d/mallory/Smith, Alice.ipynb", True)))
    assert [(i.student, i.named_for) for i in found] == [("Alice Smith_1", ""), ("Alice Smith_2", ""),
                                                         ("mallory", "Alice Smith_1")]


def test_a_file_in_a_students_folder_named_for_a_classmate_is_marked_and_stays_theirs():
    """A file inside mallory's folder whose name is another student's id is mallory's, ``named_for`` that student;
    a file named for no one of the class, or for mallory, is simply hers."""
    found = attribute_files(owned(("bob", "s/bob.ipynb", False),
                                  ("mallory", "s/mallory/bob.ipynb", True),
                                  ("mallory", "s/mallory/notes.ipynb", True),
                                  ("mallory", "s/mallory/Mallory.ipynb", True)))
    assert [(i.student, i.named_for) for i in found] == [("bob", ""), ("mallory", "bob"), ("mallory", ""),
                                                         ("mallory", "")]


def test_a_file_at_the_top_is_never_named_for_another_student():
    """Only a file inside a student's folder can be named for a classmate."""
    found = attribute_files(owned(("bob", "s/bob.ipynb", False), ("mallory", "s/bob.ipynb", False)))
    assert [i.named_for for i in found] == ["", ""]


def test_an_lms_id_in_a_files_name_names_its_participant_whatever_the_name():
    """A Canvas user id in a file's name names the class's student with that id (in the same LMS), whatever the name
    beside it; the owner's own id names no one; a Moodle number is no Canvas id."""
    found = attribute_files(owned(("jonescarol_12345_678_02.ipynb", "s/jonescarol_12345_678_02.ipynb", False),
                                  ("Bob Lee_55555_assignsubmission_file_", "s/Bob Lee_55555_assignsubmission_file_/a",
                                   True),
                                  ("mallory_77777", "s/mallory_77777/xyz_12345_1_02.ipynb", True),
                                  ("mallory_77777", "s/mallory_77777/jonescarol_77777_1_02.ipynb", True),
                                  ("mallory_77777", "s/mallory_77777/xyz_55555_1_02.ipynb", True)))
    assert [i.named_for for i in found] == ["", "", "jonescarol", "", ""]


def test_a_file_named_for_the_owner_and_a_classmate_alike_is_the_owners():
    """A name that is the owner's too (a key in common) names no one else; a name that two classmates share names the
    first of them in sorted order; a chapter's name names no one."""
    found = attribute_files(owned(("jonescarol_12345_1_x.ipynb", "s/jonescarol_12345_1_x.ipynb", False),
                                  ("Carol Jones", "s/Carol Jones/Jones, Carol.ipynb", True),
                                  ("Lee Ann", "s/Lee Ann/x.ipynb", True),
                                  ("Ann Lee", "s/Ann Lee/x.ipynb", True),
                                  ("ch02", "s/ch02.ipynb", False),
                                  ("zed", "s/zed/ann lee.ipynb", True),
                                  ("zed", "s/zed/ch02.ipynb", True)), ["ch02"])
    assert [i.named_for for i in found] == ["", "", "", "", "", "Ann Lee", ""]


def test_files_given_one_by_one_are_attributed_as_one_class(tmp_path):
    """``students_of_files``: the owners of the files, then the class's attributions (a file named for a classmate)."""
    paths = [touch(tmp_path / "s" / "alice" / "bob.ipynb"), touch(tmp_path / "s" / "bob" / "notes.ipynb")]
    assert [(i.student, i.named_for) for i in students_of_files(paths, [])] == [("alice", "bob"), ("bob", "")]


@pytest.mark.parametrize("second, inside, refused", [
    ("alice_2025_y.ipynb", False, True),          # same Canvas-like name and id, different rest: two people?
    ("alice_2025.ipynb", False, True),
    ("alice_2025_x-1.ipynb", False, False),       # a re-upload of one file
    ("alice_2025_x-12.ipynb", False, False),
    ("alice_2025_x.ipynb", False, False),
    ("alice_2026_y.ipynb", False, False),         # another id
    ("alicia_2025_y.ipynb", False, False),
    ("alice_2025_y.ipynb", True, False),          # in a folder: that folder's student
    ("alice_2025_9_y.ipynb", False, False),       # Canvas's attachment id: one student's two uploads
])
def test_files_that_look_like_one_canvas_student_without_an_attachment_id_are_refused(second, inside, refused):
    """Files given side by side with one Canvas-like name and id but no attachment id and different rests (a "-N"
    suffix aside) may be two people: the run stops naming the files. Anything that tells them apart passes."""
    triples = owned(("alice_2025_x.ipynb", "d/alice_2025_x.ipynb", False), (second, f"d/{second}", inside))
    if refused:
        with pytest.raises(GradingError, match=re.escape(f"d/alice_2025_x.ipynb, d/{second}. Rename them")):
            attribute_files(triples)
    else:
        assert len(attribute_files(triples)) == 2


def test_the_first_upload_of_a_pair_with_attachment_id_is_not_refused():
    """Canvas full names (with attachment ids) are never refused, even with different rests."""
    assert len(attribute_files(owned(("alice_2025_1_x.ipynb", "d/a", False), ("alice_2025_2_y.ipynb", "d/b", False)))) \
        == 2


def test_the_teacher_hears_of_files_named_for_a_classmate_and_of_moodle_namesakes():
    """A file named for a classmate is one warning naming both students and the file; Moodle namesakes are one
    warning per name (sorted), numbers and student ids in the order of the (string) numbers, each participant once."""
    named = Identity("mallory", named_for="bob")
    namesakes = [Identity("Zed_3", "moodle", "3", "Zed", namesake=True),
                 Identity("Alice Smith_2", "moodle", "2", "Alice Smith", namesake=True),
                 Identity("Alice Smith_10", "moodle", "10", "Alice Smith", namesake=True),
                 Identity("Alice Smith_2", "moodle", "2", "Alice Smith", namesake=True),
                 Identity("Zed_4", "moodle", "4", "Zed", namesake=True)]
    warnings = identity_warnings([(named, Path("s/mallory/bob.ipynb"))] + [(i, Path("x")) for i in namesakes])
    assert warnings[0] == ("student 'mallory': s/mallory/bob.ipynb is named for another student, 'bob', but lies in "
                           "'mallory''s folder: not graded, for either of them (a notebook counts only for the student "
                           "whose folder holds it)")
    assert warnings[1].startswith("Moodle participants 10, 2 are all named 'Alice Smith': graded as "
                                  "'Alice Smith_10', 'Alice Smith_2', two students; Moodle numbers")
    assert warnings[2].startswith("Moodle participants 3, 4 are all named 'Zed': graded as 'Zed_3', 'Zed_4'")
    assert len(warnings) == 3 and identity_warnings([(Identity("ann"), Path("a"))]) == []


def test_moodle_namesakes_whose_name_is_a_number_are_still_said():
    """Every namesake counts, whatever the name: participants 12 and 13 both named "12" are one warning."""
    namesakes = [Identity("12_12", "moodle", "12", "12", namesake=True),
                 Identity("12_13", "moodle", "13", "12", namesake=True)]
    [warning] = identity_warnings([(i, Path("x")) for i in namesakes])
    assert warning.startswith("Moodle participants 12, 13 are all named '12': graded as '12_12', '12_13', two")


def test_a_file_is_not_graded_only_when_it_is_named_for_another_student():
    """``problem_of``: a file named for a classmate gives the reason (naming both students); otherwise none."""
    problem = problem_of(Identity("mallory", named_for="bob"))
    assert problem.startswith("the file is named for another student, 'bob', but lies in 'mallory''s folder")
    assert problem_of(Identity("mallory")) is None
    assert problem_of(Identity("mallory", "moodle", "1", "M", namesake=True)) is None


# ======================================================================================================================
# identity.py: times
# ======================================================================================================================
@pytest.fixture
def zone(monkeypatch):
    """Set this process's local zone (a POSIX TZ string) for one test."""
    def set_zone(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()
    yield set_zone
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("text, moment", [
    ("2025-03-14T23:59+01:00", datetime(2025, 3, 14, 22, 59, tzinfo=UTC)),
    ("2025-03-14T23:59:30Z", datetime(2025, 3, 14, 23, 59, 30, tzinfo=UTC)),
    ("  2025-03-14T23:59+00:00\n", datetime(2025, 3, 14, 23, 59, tzinfo=UTC)),
    ("2025-03-14 23:58:00.123456 UTC", datetime(2025, 3, 14, 23, 58, 0, 123456, tzinfo=UTC)),
    ("2025-03-14 23:58:00 UTC  ", datetime(2025, 3, 14, 23, 58, tzinfo=UTC)),
    ("Friday, 14 March 2025, 11:58 PM UTC", datetime(2025, 3, 14, 23, 58, tzinfo=UTC)),
    ("14 March 2025, 12:05 AM UTC", datetime(2025, 3, 14, 0, 5, tzinfo=UTC)),
    ("14 March 2025, 12:05 PM UTC", datetime(2025, 3, 14, 12, 5, tzinfo=UTC)),
])
def test_a_time_is_iso_8601_nbgraders_utc_or_moodles_words(zone, text, moment):
    """ISO 8601 with a zone is that instant; a trailing `` UTC`` (nbgrader's) puts it in UTC; Moodle's ``Friday, 14
    March 2025, 11:58 PM`` (with or without the weekday) is read with its 12-hour clock."""
    zone("JST-9")
    found = parse_time(text, "w")
    assert found == moment and found.utcoffset() is not None


@pytest.mark.parametrize("text, local", [
    ("2025-03-14T09:00", datetime(2025, 3, 14, 9, 0)),
    ("2025-03-14 09:00", datetime(2025, 3, 14, 9, 0)),
    ("Friday, 14 March 2025, 9:00 AM", datetime(2025, 3, 14, 9, 0)),
    ("14 March 2025, 09:00 PM", datetime(2025, 3, 14, 21, 0)),
])
def test_a_time_without_a_zone_is_this_machines_local_time_made_explicit(zone, text, local):
    """No zone and no ``UTC``: the time is this machine's local time (here JST, UTC+9), returned with that offset."""
    zone("JST-9")
    found = parse_time(text, "w")
    assert found.utcoffset() == timedelta(hours=9)
    assert found == local.replace(tzinfo=timezone(timedelta(hours=9)))


@pytest.mark.parametrize("text", ["", "   ", "yesterday", "2025-13-01T00:00", "UTC", " UTC", "14/03/2025 23:59",
                                  "2025-03-14 23:58:00 utc"])
def test_a_text_that_is_no_time_is_refused_naming_what_and_the_text(text):
    """Anything else is a GradingError naming what it was (``what``), the text as given (stripped) and an example."""
    with pytest.raises(GradingError, match=re.escape(f"line 3: {text.strip()!r} is not a time; expected e.g. "
                                                     "2025-03-14T23:59+01:00")):
        parse_time(text, "line 3")


@pytest.mark.parametrize("moment, text", [
    (None, None),
    (datetime(2025, 3, 14, 23, 59, 30, 999999, tzinfo=UTC), "2025-03-14T23:59:30+00:00"),
    (datetime(2025, 3, 15, 0, 30, tzinfo=timezone(timedelta(hours=1))), "2025-03-14T23:30:00+00:00"),
    (datetime(2025, 3, 14, 20, 0, tzinfo=timezone(timedelta(hours=-5))), "2025-03-15T01:00:00+00:00"),
])
def test_a_gradebook_time_is_iso_8601_in_utc_to_the_second(moment, text):
    """``iso``: UTC, microseconds dropped (not rounded), ISO 8601; None stays None."""
    assert iso(moment) == text


def test_a_file_time_is_its_modification_time_in_utc():
    """``file_time``: nanoseconds since the epoch as a UTC time."""
    assert file_time(1_500_000_000_500_000_000) == datetime(2017, 7, 14, 2, 40, 0, 500000, tzinfo=UTC)
    assert file_time(0) == datetime(1970, 1, 1, tzinfo=UTC)


def test_the_environment_note_names_the_local_zone_and_any_tz_setting(zone, monkeypatch):
    """The summary says the zone a time without one is read in (name and offset) and the TZ variable if set."""
    zone("JST-9")
    assert environment_note() == "JST (UTC+0900), TZ=JST-9"
    monkeypatch.delenv("TZ")
    time.tzset()
    assert "TZ=" not in environment_note() and environment_note().count("(UTC") == 1


NBGRADER_TIME = "2025-03-14 23:58:00.123456 UTC"  # 30 characters
NBGRADER_MOMENT = datetime(2025, 3, 14, 23, 58, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("content, moment", [
    (NBGRADER_TIME.encode(), NBGRADER_MOMENT),
    (f"\n  {NBGRADER_TIME}  \nsecond line\n".encode(), NBGRADER_MOMENT),             # the first non-blank text line
    ((" " * 170 + NBGRADER_TIME).encode(), NBGRADER_MOMENT),                           # 200 bytes: all read
    ((" " * 171 + NBGRADER_TIME).encode(), None),                                      # 201: cut, no time
    (b"", None),
    (b"  \n \n", None),
    (b"not a time", None),
    (b"\xff\xfe2025", None),
])
def test_nbgraders_timestamp_is_the_first_line_of_at_most_200_bytes_beside_the_notebook(tmp_path, content, moment):
    """``timestamp.txt`` in the notebook's folder: its first line (of at most 200 bytes read) is the time; a file with
    no readable time gives None, not an error."""
    (tmp_path / "timestamp.txt").write_bytes(content)
    assert nbgrader_timestamp(tmp_path / "a.ipynb") == moment


def test_a_timestamp_that_is_a_link_a_folder_or_missing_is_no_time(tmp_path):
    """A missing ``timestamp.txt``, a folder of that name and a link (even to a good file) give None."""
    assert nbgrader_timestamp(tmp_path / "a.ipynb") is None
    (tmp_path / "dir" / "timestamp.txt").mkdir(parents=True)
    assert nbgrader_timestamp(tmp_path / "dir" / "a.ipynb") is None
    touch(tmp_path / "good.txt", NBGRADER_TIME)
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "timestamp.txt").symlink_to(tmp_path / "good.txt")
    assert nbgrader_timestamp(tmp_path / "link" / "a.ipynb") is None


# ======================================================================================================================
# identity.py: CSV files a teacher gives
# ======================================================================================================================
def csv_file(tmp_path: Path, text: str | bytes, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_read_timestamps_maps_each_student_to_their_time(tmp_path):
    """``--timestamps``: {student (stripped): time}; a blank or ``-`` time is no entry; columns found in any case."""
    path = csv_file(tmp_path, " Student ,Submitted_At\n alice ,2025-03-14T10:00Z\nbob, - \ncid,\n"
                              "dan,2025-03-14 11:00 UTC\n")
    assert read_timestamps(path) == {"alice": datetime(2025, 3, 14, 10, tzinfo=UTC),
                                     "dan": datetime(2025, 3, 14, 11, tzinfo=UTC)}


@pytest.mark.parametrize("header, student, time_column", [
    ("email,student,submitted_at", "student", "submitted_at"),        # student before email
    ("full name,identifier,time", "identifier", "time"),               # identifier before full name
    ("username,email address,timestamp", "email address", "timestamp"),
    ("name,id,timestamp,submitted", "id", "submitted"),                # submitted before timestamp
    ("name,Last modified (submission),grade", "name", "last modified (submission)"),
    ("name,Last modified (submission),time", "name", "time"),
    ("username,submitted at", "username", "submitted at"),
    ("full name,submitted at,submitted_at", "full name", "submitted_at"),
])
def test_the_student_and_time_columns_are_the_first_of_each_list_present(tmp_path, header, student, time_column):
    """The student column is the first present of student, id, identifier, full name, name, email address, email,
    username; the time column the first of submitted_at, submitted, timestamp, time, last modified (submission),
    submitted at."""
    columns = header.split(",")
    values = {c.lower(): f"v{n}" for n, c in enumerate(columns)}
    values[time_column] = "2025-03-14T10:00Z"
    path = csv_file(tmp_path, header + "\n" + ",".join(f'"{values[c.lower()]}"' for c in columns) + "\n")
    assert read_timestamps(path) == {values[student]: datetime(2025, 3, 14, 10, tzinfo=UTC)}


@pytest.mark.parametrize("text, found", [
    ("student,grade\nalice,1\n", "student, grade"),
    ("when,time\nalice,2025-03-14T10:00Z\n", "when, time"),
    ("", "none"),
])
def test_a_timestamps_file_without_both_columns_is_refused_naming_what_it_found(tmp_path, text, found):
    """Without a student and a time column, a GradingError names the file, the first five names of each list and
    the header found."""
    path = csv_file(tmp_path, text)
    with pytest.raises(GradingError, match=re.escape(
            f"--timestamps {path}: needs a student column (student, id, identifier, full name, name) and a time "
            f"column (submitted_at, submitted, timestamp, time, last modified (submission)); found {found}")):
        read_timestamps(path)


def test_a_bad_time_in_the_timestamps_file_names_the_file_and_line(tmp_path):
    """A time that is no time is a GradingError naming ``--timestamps FILE line N`` (the header is line 1)."""
    path = csv_file(tmp_path, "student,time\nalice,2025-03-14T10:00Z\nbob,soon\n")
    with pytest.raises(GradingError, match=re.escape(f"--timestamps {path} line 3: 'soon' is not a time")):
        read_timestamps(path)


@pytest.mark.parametrize("content, rows", [
    ("a,b\n1,2\n", [["a", "b"], ["1", "2"]]),
    ("a;b\n1;2\n", [["a", "b"], ["1", "2"]]),                       # more ; than , in the first line: semicolons
    ("a;b,c;d\n1;2,3;4\n", [["a", "b,c", "d"], ["1", "2,3", "4"]]),
    ("a;b,c\n1;2,3\n", [["a;b", "c"], ["1;2", "3"]]),               # as many , as ;: commas
    ("a,b;c,d\n", [["a", "b;c", "d"]]),
    ("\ufeffstudent,time\nx,y\n", [["student", "time"], ["x", "y"]]),  # a BOM is not part of the first name
    ("a,b\n\n , \n,\n1,2\n", [["a", "b"], ["1", "2"]]),             # blank rows dropped
    ('a,b\n"x\ny",2\n', [["a", "b"], ["x\ny", "2"]]),                # a quoted newline is one cell
    ("a,b\r\n1,2\r\n", [["a", "b"], ["1", "2"]]),
    ("", []),
])
def test_a_teachers_csv_is_utf_8_with_commas_or_semicolons(tmp_path, content, rows):
    """A teacher's CSV: UTF-8 with or without a BOM; semicolon-separated when its first line has more ``;`` than
    ``,``; rows with no non-blank cell dropped."""
    assert read_csv_rows(csv_file(tmp_path, content), "--x") == rows


@pytest.mark.parametrize("content, lines", [
    ("a,b\n1,2\n", [1, 2]),
    ("a,b\n\n1,2\n", [1, 3]),                     # a blank line is counted
    ("\n , \na,b\n1,2\n", [3, 4]),
    ('a,b\n"x\ny",2\n3,4\n', [1, 2, 4]),           # a row starts on its first line; its quoted newline counts
    ("a;b\n\n\n1;2\n", [1, 4]),
])
def test_a_teachers_csv_rows_carry_the_line_of_the_file_they_start_on(tmp_path, content, lines):
    """Each row is numbered by the line of the file it starts on (1 for the first), blank lines and quoted newlines
    above it counted, as an editor shows it."""
    from pgcourse.classroom.grading.identity import read_csv_lines

    assert [line for line, _ in read_csv_lines(csv_file(tmp_path, content), "--x")] == lines


def test_a_bad_time_is_named_by_its_line_in_the_file_blank_lines_counted(tmp_path):
    """The line a bad time is reported on is the file's line (the blank line above it counted)."""
    path = csv_file(tmp_path, "student,time\n\nalice,2025-03-14T10:00Z\n\nbob,soon\n")
    with pytest.raises(GradingError, match=re.escape(f"--timestamps {path} line 5: 'soon' is not a time")):
        read_timestamps(path)


def test_a_teachers_csv_that_is_missing_or_not_utf_8_is_refused_naming_the_option_and_file(tmp_path):
    """A missing file: "no such file"; a file that is not UTF-8 text, or a folder: "cannot be read as UTF-8 text";
    each names the option and the path."""
    missing = tmp_path / "none.csv"
    with pytest.raises(GradingError, match=re.escape(f"--roster {missing}: no such file")):
        read_csv_rows(missing, "--roster")
    latin = csv_file(tmp_path, "name\nJos\xe9\n".encode("latin-1"), "latin.csv")
    with pytest.raises(GradingError, match=re.escape(f"--timestamps {latin}: cannot be read as UTF-8 text (")):
        read_csv_rows(latin, "--timestamps")
    with pytest.raises(GradingError, match=re.escape(f"--roster {tmp_path}: cannot be read as UTF-8 text (")):
        read_csv_rows(tmp_path, "--roster")


# ======================================================================================================================
# records.py
# ======================================================================================================================
def test_an_atomic_write_creates_the_folder_and_a_readable_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    """``atomic_write``: the parent folders are made, the text written as UTF-8, the file readable by all (0644)
    whatever the umask, and no temporary file is left beside it."""
    old = os.umask(0o077)
    try:
        path = records.atomic_write(tmp_path / "a" / "b" / "g.csv", "é,1\n", overwrite=False)
    finally:
        os.umask(old)
    assert path == tmp_path / "a" / "b" / "g.csv"
    assert path.read_bytes() == "é,1\n".encode("utf-8") and (path.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["g.csv"]


def test_an_atomic_write_replaces_a_file_only_when_asked(tmp_path):
    """Without ``overwrite`` an existing file is never replaced: FileExistsError naming it and ``--overwrite``, the
    file as it was, no temporary left; with ``overwrite`` it is replaced."""
    path = touch(tmp_path / "g.csv", "old")
    with pytest.raises(FileExistsError, match=re.escape(f"{path} already exists; pass --overwrite to replace it")):
        records.atomic_write(path, "new", overwrite=False)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["g.csv"]
    records.atomic_write(path, "new", overwrite=True)
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["g.csv"]


@pytest.mark.parametrize("now, stamp", [
    (datetime(2025, 3, 14, 12, 1, 2, 999999, tzinfo=UTC), "20250314T120102Z"),
    (datetime(2025, 3, 14, 13, 1, 2, tzinfo=timezone(timedelta(hours=1))), "20250314T120102Z"),
    (datetime(2025, 1, 1, 0, 0, 0, tzinfo=timezone(timedelta(hours=-2))), "20250101T020000Z"),
])
def test_a_run_stamp_is_its_utc_time_to_the_second(now, stamp):
    """``run_stamp``: the time in UTC as ``YYYYmmddTHHMMSSZ``."""
    assert records.run_stamp(now) == stamp


def test_a_run_stamp_without_a_time_is_now():
    """Without a time, the stamp is the present moment's (in UTC)."""
    before = datetime.now(UTC).replace(microsecond=0)
    found = datetime.strptime(records.run_stamp(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= found <= datetime.now(UTC)


def test_the_history_of_a_file_is_a_folder_named_for_its_stem_beside_it(tmp_path):
    """``g.csv`` keeps its history in ``g.history`` beside it (``x.tar.gz``: ``x.tar.history``)."""
    assert records.history_folder(tmp_path / "g.csv") == tmp_path / "g.history"
    assert records.history_folder(tmp_path / "x.tar.gz") == tmp_path / "x.tar.history"
    assert records.history_folder(Path("g")) == Path("g.history")


def test_keeping_a_previous_version_copies_it_with_its_time_never_over_another(tmp_path):
    """``keep_previous``: a copy in the history named ``<stamp>-<name>`` (its modification time kept); a second and
    third in the same second are ``<stamp>.002-<name>``, ``<stamp>.003-<name>``; no file, no copy."""
    path = touch(tmp_path / "g.csv", "v1")
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    assert records.keep_previous(tmp_path / "none.csv", "S") is None
    assert not (tmp_path / "none.history").exists()
    first = records.keep_previous(path, "20250314T120102Z")
    assert first == tmp_path / "g.history" / "20250314T120102Z-g.csv"
    assert first.read_text() == "v1" and first.stat().st_mtime_ns == 1_000_000_000_000_000_000
    path.write_text("v2")
    second = records.keep_previous(path, "20250314T120102Z")
    path.write_text("v3")
    third = records.keep_previous(path, "20250314T120102Z")
    assert (second.name, third.name) == ("20250314T120102Z.002-g.csv", "20250314T120102Z.003-g.csv")
    assert [p.read_text() for p in sorted((tmp_path / "g.history").iterdir())] == ["v1", "v2", "v3"]


def test_a_folder_is_no_previous_version(tmp_path):
    """Only a file is kept: a folder at the path is not copied."""
    (tmp_path / "g.csv").mkdir()
    assert records.keep_previous(tmp_path / "g.csv", "S") is None


def test_writing_a_kept_file_keeps_the_previous_text_unless_it_is_the_same(tmp_path):
    """``write_kept``: a new file is written (nothing kept); a changed file is kept then replaced (the copy
    returned); the same text again writes nothing, keeps nothing and returns None."""
    path = tmp_path / "out" / "g.csv"
    assert records.write_kept(path, "v1", "S1") is None and path.read_text() == "v1"
    assert records.write_kept(str(path), "v1", "S2") is None
    assert not (tmp_path / "out" / "g.history").exists()
    kept = records.write_kept(path, "v2", "S3")
    assert kept == tmp_path / "out" / "g.history" / "S3-g.csv" and kept.read_text() == "v1"
    assert path.read_text() == "v2"


def test_a_kept_file_that_is_not_utf_8_is_replaced_and_kept(tmp_path):
    """A previous file that cannot be read as UTF-8 is different text: it is kept, then replaced."""
    path = tmp_path / "g.csv"
    path.write_bytes(b"\xff\xfe")
    kept = records.write_kept(path, "v", "S")
    assert kept.read_bytes() == b"\xff\xfe" and path.read_text() == "v"


@pytest.mark.parametrize("what", ["link", "dangling link", "folder"])
def test_a_kept_file_that_is_a_link_or_a_folder_is_refused(tmp_path, what):
    """A symbolic link (even to nothing) or a folder at the path is a GradingError saying which; nothing is written
    through it."""
    path = tmp_path / "g.csv"
    target = tmp_path / "target.csv"
    if what == "folder":
        path.mkdir()
    else:
        if what == "link":
            target.write_text("theirs")
        path.symlink_to(target)
    said = "a folder" if what == "folder" else "a symbolic link"
    with pytest.raises(GradingError, match=re.escape(f"{path} is {said}; expected a file name (nothing was written")):
        records.write_kept(path, "mine", "S")
    assert not (tmp_path / "g.history").exists()
    if what == "link":
        assert target.read_text() == "theirs"
    if what == "dangling link":
        assert not target.exists()


class FakeGit:
    """``subprocess.run`` for git: (returncode, stdout) of ``rev-parse``, stdout of ``status``; records each call."""

    def __init__(self, commit=(0, "abc1234\n"), status="", error=None):
        self.commit, self.status, self.error, self.calls = commit, status, error, []

    def __call__(self, args, **kwargs):
        self.calls.append((args, kwargs))
        if self.error:
            raise self.error
        code, out = self.commit if "rev-parse" in args else (0, self.status)
        return subprocess.CompletedProcess(args, code, out, "")


@pytest.mark.parametrize("git, version", [
    (FakeGit(), "abc1234"),
    (FakeGit(status=" M solutions/02.ipynb\n"), "abc1234+changes"),
    (FakeGit(status="  \n"), "abc1234"),
    (FakeGit(commit=(128, "abc1234\n")), None),                       # not a git repository
    (FakeGit(commit=(0, "  \n")), None),
    (FakeGit(error=FileNotFoundError("git")), None),                 # no git
    (FakeGit(error=subprocess.TimeoutExpired("git", 10)), None),
])
def test_the_course_version_is_pgcourses_the_notebooks_hash_and_the_git_commit(tmp_path, monkeypatch, git, version):
    """``course_version``: pgcourse's version; the notebook's name and the first 16 hex digits of its SHA-256; the
    course's short commit, with ``+changes`` when solutions/ or exercises/ differ from it (no commit when git fails
    or is missing)."""
    from pgcourse._version import __version__

    monkeypatch.setattr(subprocess, "run", git)
    notebook = touch(tmp_path / "course.ipynb", "abc")
    found = records.course_version(tmp_path, notebook)
    expected = {"pgcourse": __version__,
                "course_notebook": "course.ipynb sha256:ba7816bf8f01cfea"}  # sha256("abc") = ba7816bf8f01cfea4141...
    if version is not None:
        expected["git"] = version
    assert found == expected
    if version is not None:
        (rev, rev_kw), (status, status_kw) = git.calls
        assert rev == ["git", "-C", str(tmp_path), "rev-parse", "--short", "HEAD"]
        assert status == ["git", "-C", str(tmp_path), "status", "--porcelain", "--", "solutions", "exercises"]
        assert rev_kw["timeout"] == 10 and status_kw["timeout"] == 10 and rev_kw["check"] is False


def test_a_course_version_without_its_notebook_has_no_hash(tmp_path, monkeypatch):
    """A notebook that cannot be read leaves the hash out (the rest is still said)."""
    monkeypatch.setattr(subprocess, "run", FakeGit(commit=(1, "")))
    assert records.course_version(tmp_path, tmp_path / "missing.ipynb") == {"pgcourse": records_version()}


def records_version() -> str:
    from pgcourse._version import __version__
    return __version__


def test_an_audit_line_is_appended_beside_the_file_with_the_time_first(tmp_path, monkeypatch):
    """``audit``: one JSON line per call appended to ``<stem>.audit.jsonl`` beside the file (its folder made if
    need be), the UTC time to the second first, then the entry; text as is (not escaped), other values as strings."""
    path = tmp_path / "grades" / "hw1.csv"
    before = datetime.now(UTC).replace(microsecond=0)
    log = records.audit(path, {"action": "grade", "student": "José", "file": Path("a/b.ipynb")})
    records.audit(path, {"action": "update"})
    assert log == tmp_path / "grades" / "hw1.audit.jsonl"
    text = log.read_text(encoding="utf-8")
    assert "José" in text and text.endswith("\n") and text.count("\n") == 2
    first, second = [json.loads(line) for line in text.splitlines()]
    assert list(first) == ["time", "action", "student", "file"] and first["file"] == "a/b.ipynb"
    assert second == {"time": second["time"], "action": "update"}
    moment = datetime.fromisoformat(first["time"])
    assert moment.utcoffset() == timedelta(0) and moment.microsecond == 0
    assert before <= moment <= datetime.now(UTC)
