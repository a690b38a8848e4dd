from pyramid.scripts.pshell import PShellCommand


def test_pshell_setup_adds_tm_dbsession_and_models(ini_file, dbengine):
    command = PShellCommand(['pshell', ini_file], quiet=True)
    seen = {}

    def shell(env, help):
        seen.update(env)
        seen['count'] = env['dbsession'].query(env['models'].Page).count()

    assert command.run(shell) in (0, None)
    assert seen['tm'] is seen['request'].tm
    assert isinstance(seen['count'], int)
