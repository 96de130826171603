from spawner.launch.limitenv import limit_env


def test_jupyterhubs_spellings_and_unset_values_left_out():
    assert limit_env(memory=2**30, cpu=1.5) == {"MEM_LIMIT": "1073741824", "CPU_LIMIT": "1.5"}
    assert limit_env(memory=2**30, cpu=2, memory_guarantee=2**29, cpu_guarantee=0.5) == {
        "MEM_LIMIT": "1073741824", "CPU_LIMIT": "2.0",
        "MEM_GUARANTEE": "536870912", "CPU_GUARANTEE": "0.5"}
    assert limit_env(memory=None, cpu=0) == {}
