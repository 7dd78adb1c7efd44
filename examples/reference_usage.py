"""The reference document's examples, unchanged apart from the import line.

Run with a Redis URL (`WORKFLOW_REDIS_URL=redis://...`) or none (the embedded server).
"""

from workflow import Work


# Function that performs the work.
# We assume that this function is availaible as an import.
def add(a: int, b: int) -> int:
    result = a + b
    return result


def main() -> None:
    # Define `Work`
    work = Work(pipeline="sample-pipeline", parameters={"a": 1, "b": 2})
    print(work.payload)

    # Recommended fields
    work.event = [12345, 67890]
    work.user = "some-user"
    work.tag = ["some-tag", "some-other-tag"]
    work.group = ["some-working-group", "some-other-working-group"]
    work.site = "chime"

    # Deposit `Work`
    work.deposit()

    # Manual Withdraw and Deposit
    work = Work.withdraw(pipeline="sample-pipeline")
    result = add(**work.parameters)
    work.results = result
    work.status = "success"
    work.update()

    stored = Work.get(work.id)
    print(stored.status, stored.results, stored.attempt, stored.tags)


if __name__ == "__main__":
    main()
