"""Fast tier: the prompt parsers (short form, long form, v2 tensors) and the request options."""

import json

import numpy as np
import pytest

from model.errors import BadInput
from model.prompts import ObjectPrompt, Prompts, check_counts, short_form
from model.prompts_json import long_form
from model.request import check_mask_parts, parse_options, parse_params
from model.v2_arrays import from_arrays

P = "points"
# (case id, query items, words the error must contain)
QUERY_ERRORS = [
    ("no prompt", [], "points=x,y"),
    ("frame_idx negative", [("frame_idx", "-1"), (P, "10,10")], "non-negative"),
    ("frame_idx not int", [("frame_idx", "abc"), (P, "10,10")], "integer"),
    ("frame_idx float", [("frame_idx", "1.5"), (P, "10,10")], "integer"),
    ("frame_idx twice", [("frame_idx", "1"), ("frame_idx", "2"), (P, "1,1")], "more than once"),
    ("point x;y", [(P, "10;10")], "'x,y'"),
    ("point a,b", [(P, "a,b")], "not a number"),
    ("point 3 values", [(P, "1,2,3")], "'x,y'"),
    ("point NaN", [(P, "nan,5")], "finite"),
    ("point inf", [(P, "inf,5")], "finite"),
    ("point negative", [(P, "-1,5")], "negative"),
    ("label count", [(P, "10,10"), (P, "20,20"), ("labels", "1")], "1 labels for 2"),
    ("label value", [(P, "10,10"), ("labels", "2")], "1 (on the object) or 0"),
    ("labels alone", [("labels", "1")], "without points"),
    ("box 3 values", [("box", "1,2,3")], "four numbers"),
    ("box x2<x1", [("box", "100,10,50,80")], "x2 50 is left of x1 100"),
    ("box y2<y1", [("box", "10,80,50,10")], "y2 10 is above y1 80"),
    ("box twice", [("box", "1,1,5,5"), ("box", "1,1,5,5")], "more than once"),
    ("too many points", [(P, "5,5")] * 65, "at most 64"),
    ("unknown param", [(P, "5,5"), ("point", "5,5")], "unknown query parameter 'point'"),
    ("both forms", [(P, "5,5"), ("prompts", "[]")], "not both"),
    ("bad format", [(P, "5,5"), ("format", "gif")], "png, palette, rle"),
    ("bad preview", [(P, "5,5"), ("preview", "gif")], "mp4"),
    ("preview with rle", [(P, "5,5"), ("format", "rle"), ("preview", "mp4")], "format=png"),
    ("bad direction", [(P, "5,5"), ("direction", "up")], "both, forward, backward"),
    ("max frames 0", [(P, "5,5"), ("max_frames_to_track", "0")], "positive integer"),
    ("max frames text", [(P, "5,5"), ("max_frames_to_track", "x")], "positive integer"),
]


@pytest.mark.parametrize("case,items,words", QUERY_ERRORS, ids=[c[0] for c in QUERY_ERRORS])
def test_query_errors_name_the_problem(case, items, words):
    with pytest.raises(BadInput) as err:
        parse_params(items, {}, max_points=64, max_objects=16)
    assert words in str(err.value), str(err.value)


def test_short_form_is_object_one_on_one_frame():
    prompts, options, masks = parse_params(
        [("frame_idx", "7"), (P, "10,20.5"), (P, "30,40"), ("labels", "1"), ("labels", "0"),
         ("box", "1,2,300,200")], {}, 64, 16)
    assert not prompts.long_form and masks == {}
    (p,) = prompts.entries
    assert (p.obj_id, p.frame_idx, p.points, p.labels, p.box) == \
        (1, 7, ((10.0, 20.5), (30.0, 40.0)), (1, 0), (1.0, 2.0, 300.0, 200.0))
    assert options.format == "png" and options.direction == "both" and options.preview is None
    assert prompts.frames == [7] and prompts.obj_ids == [1]


def test_options_parse():
    o = parse_options({"format": ["rle"], "direction": ["forward"],
                       "max_frames_to_track": ["12"]})
    assert (o.format, o.direction, o.max_frames_to_track, o.preview) == ("rle", "forward", 12,
                                                                        None)
    assert parse_options({"preview": ["mp4"], "format": ["palette"]}).preview == "mp4"
    assert parse_options({"preview": ["none"]}).preview is None


LONG = [{"obj_id": 1, "frame_idx": 0, "points": [[320, 180], [400, 200]], "labels": [1, 0],
         "name": "dog"},
        {"obj_id": 1, "frame_idx": 40, "points": [[330, 170]]},
        {"obj_id": 2, "frame_idx": 10, "box": [100, 100, 200, 220]},
        {"obj_id": 3, "frame_idx": 5, "mask": "mask3"}]


def test_long_form_from_the_design_example():
    prompts, _, masks = parse_params([("prompts", json.dumps(LONG))], {"mask3": b"png"}, 64, 16)
    assert prompts.long_form and masks == {"mask3": b"png"}
    assert prompts.frames == [0, 5, 10, 40] and prompts.obj_ids == [1, 2, 3]
    assert prompts.entries[0].labels == (1, 0) and prompts.entries[1].labels == (1,)
    assert prompts.entries[2].box == (100, 100, 200, 220) and prompts.entries[3].mask == "mask3"
    assert prompts.objects()[0] == {"obj_id": 1, "name": "dog", "prompted_frames": [0, 40]}


def _long_error(entries, files=None, max_points=64, max_objects=16) -> str:
    with pytest.raises(BadInput) as err:
        text = entries if isinstance(entries, str) else json.dumps(entries)
        parse_params([("prompts", text)], files or {}, max_points, max_objects)
    return str(err.value)


LONG_ERRORS = [
    ("not json", "[{", "not valid JSON"),
    ("empty list", [], "non-empty"),
    ("not an object", [5], "prompts[0] must be an object"),
    ("unknown key", [{"obj_id": 1, "points": [[1, 1]], "colour": "red"}],
     "prompts[0]: unknown key 'colour'"),
    ("no obj_id", [{"points": [[1, 1]]}], "prompts[0].obj_id is missing"),
    ("obj_id 0", [{"obj_id": 0, "points": [[1, 1]]}], "prompts[0].obj_id must be in 1..255"),
    ("obj_id 256", [{"obj_id": 256, "points": [[1, 1]]}], "1..255, got 256"),
    ("obj_id text", [{"obj_id": "1", "points": [[1, 1]]}], "prompts[0].obj_id must be an integer"),
    ("obj_id bool", [{"obj_id": True, "points": [[1, 1]]}], "must be an integer"),
    ("frame negative", [{"obj_id": 1, "frame_idx": -2, "points": [[1, 1]]}],
     "prompts[0].frame_idx must be in >= 0"),
    ("nothing", [{"obj_id": 1, "frame_idx": 3}], "prompts[0]: no prompt"),
    ("point shape", [{"obj_id": 1, "points": [[1, 2, 3]]}], "prompts[0].points[0] must be [x, y]"),
    ("point negative", [{"obj_id": 1, "points": [[1, 2], [-1, 2]]}],
     "prompts[0].points[1] (-1,2) has a negative"),
    ("labels count", [{"obj_id": 1, "points": [[1, 2]], "labels": [1, 0]}],
     "prompts[0].got 2 labels for 1 points"),
    ("labels value", [{"obj_id": 1, "points": [[1, 2]], "labels": [3]}],
     "prompts[0].labels[0] must be 1"),
    ("box order", [{"obj_id": 1, "points": [[1, 2]]},
                   {"obj_id": 2, "frame_idx": 4, "box": [100, 100, 90, 120]}],
     "prompts[1].box: x2 90 is left of x1 100"),
    ("box short", [{"obj_id": 1, "box": [1, 2, 3]}], "prompts[0].box must be x1,y1,x2,y2"),
    ("mask and points", [{"obj_id": 1, "mask": "m", "points": [[1, 1]]}], "cannot be combined"),
    ("mask not named", [{"obj_id": 1, "mask": 5}], "prompts[0].mask must name the part"),
    ("mask part missing", [{"obj_id": 1, "mask": "m1"}], "prompts[0].mask: there is no"),
    ("duplicate frame", [{"obj_id": 1, "points": [[1, 1]]}, {"obj_id": 1, "points": [[2, 2]]}],
     "prompts[1]: object 1 already has a prompt on frame 0 (prompts[0])"),
    ("two names", [{"obj_id": 1, "points": [[1, 1]], "name": "a"},
                   {"obj_id": 1, "frame_idx": 3, "points": [[2, 2]], "name": "b"}],
     "prompts[1].name: object 1 is already named 'a'"),
    ("too many clicks", [{"obj_id": i, "points": [[1, 1]] * 20} for i in range(1, 5)],
     "prompts: too many points: 80 in all; this server accepts at most 64"),
    ("too many objects", [{"obj_id": i, "points": [[1, 1]]} for i in range(1, 18)],
     "prompts: 17 objects; this server tracks at most 16 in one request (--max_objects)"),
]


@pytest.mark.parametrize("case,entries,words", LONG_ERRORS, ids=[c[0] for c in LONG_ERRORS])
def test_long_form_errors_name_their_place(case, entries, words):
    assert words in _long_error(entries)


def test_unused_mask_part_is_refused():
    msg = _long_error([{"obj_id": 1, "points": [[1, 1]]}], files={"extra": b"x"})
    assert "'extra' is not used by any prompt" in msg


def test_prompts_are_checked_against_the_video():
    prompts = long_form(json.dumps([{"obj_id": 1, "points": [[10, 10]]},
                                    {"obj_id": 2, "frame_idx": 11, "points": [[400, 50]]}]))
    with pytest.raises(BadInput, match=r"prompts\[1\]\.points\[0\] \(400,50\) is outside the "
                                       r"frame: x must be in 0\.\.320"):
        prompts.check_against_video(320, 192)
    with pytest.raises(BadInput, match=r"prompts\[1\]\.frame_idx 11 is past the end.*0\.\.9"):
        prompts.check_frames(10)
    short = short_form([(P, "50,193")], 64)
    with pytest.raises(BadInput, match=r"^points\[0\] \(50,193\) is outside.*0\.\.192"):
        short.check_against_video(320, 192)


def test_v2_arrays_give_the_same_prompt_as_the_query():
    arrays = from_arrays(np.array([7], np.int64), np.array([[10, 20.5], [30, 40]], np.float32),
                         np.array([1, 0], np.int32), np.array([1, 2, 300, 200], np.float32), 64)
    query = short_form([("frame_idx", "7"), (P, "10,20.5"), (P, "30,40"), ("labels", "1"),
                        ("labels", "0"), ("box", "1,2,300,200")], 64)
    assert arrays == query
    for bad, words in [
        ((None, np.zeros((2, 3), np.float32), None, None), "shape [N,2]"),
        ((np.array([1.5]), np.ones((1, 2), np.float32), None, None), "INT64"),
        ((None, np.array([[np.nan, 1]], np.float32), None, None), "finite"),
        ((None, np.ones((1, 2), np.float32), np.array([2]), None), "labels[0] must be 1"),
        ((None, None, None, np.array([5, 5, 1, 1], np.float32)), "x2 1 is left of x1 5"),
        ((None, None, None, None), "no prompt"),
        ((None, np.ones((65, 2), np.float32), None, None), "at most 64"),
    ]:
        with pytest.raises(BadInput, match=__import__("re").escape(words)):
            from_arrays(*bad, max_points=64)


def test_counts_are_over_all_prompts():
    entries = tuple(ObjectPrompt(obj_id=i, points=((1.0, 1.0),) * 3, labels=(1,) * 3)
                    for i in range(1, 4))
    check_counts(Prompts(entries, True), max_points=9, max_objects=3)
    with pytest.raises(BadInput, match="10 in all"):
        check_counts(Prompts(entries + (ObjectPrompt(obj_id=1, frame_idx=2, points=((1, 1),),
                                                     labels=(1,)),), True), 9, 3)
    with pytest.raises(BadInput, match="--max_objects"):
        check_counts(Prompts(entries, True), max_points=64, max_objects=2)


def test_mask_parts_match_the_prompts():
    prompts = long_form(json.dumps([{"obj_id": 3, "mask": "m"}]))
    assert check_mask_parts(prompts, {"m": b"1"}) == {"m": b"1"}
    with pytest.raises(BadInput, match="no input 'm'"):
        check_mask_parts(prompts, {}, kind="input")
