from digitrec.ensemble import member_labels


def test_members_are_named_by_their_path_below_the_shared_folder(tmp_path):
    dirs = [tmp_path / "ensemble-v2" / "seed-5", tmp_path / "ensemble-warp" / "seed-5"]
    assert member_labels(dirs) == ["ensemble-v2/seed-5", "ensemble-warp/seed-5"]


def test_members_of_one_folder_keep_their_own_names(tmp_path):
    assert member_labels([tmp_path / "member-1", tmp_path / "member-0"]) == ["member-1", "member-0"]
    assert member_labels([tmp_path / "only"]) == ["only"]
