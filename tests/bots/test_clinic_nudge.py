

async def test_no_nudge_while_people_answer(sim: Simulator, juan: SimUser) -> None:
    await juan.says("hola")
    await juan.picks("lab")
    await juan.says("persona")  # handed off to the clinic's staff, still in confirming
    assert juan.handoff is not None
    await sim.advance(minutes=31)
    assert nudges(juan) == 0  # the bot's handlers do not run while people answer
