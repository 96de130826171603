import asyncio, pytest, kmock, attrs
from test_spawner_kmock import ApiServer
pytestmark = pytest.mark.kmock(cls=ApiServer)

async def test_dbg(kmock):
    kmock.resources["v1/pods"] = {}
    for q in ("watch=True", "watch=true"):
        try:
            async with kmock.get(f"/api/v1/namespaces/lockstep/pods?{q}&timeoutSeconds=1") as resp:
                print(q, resp.status, (await asyncio.wait_for(resp.content.read(200), 2)))
        except Exception as e:
            print(q, "EXC", repr(e))
