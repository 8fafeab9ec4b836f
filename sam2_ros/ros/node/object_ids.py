"""Object ids as callers write them <-> the tracker's integer ids <-> label-image values.

Why: the tracker numbers objects (1, 2, ...), but ROS callers name them with strings: Isaac ROS
SAM 2's services take any string ("obj1", "id"), and vision_msgs/Detection2D.id is a string that
stays the same for the same object across messages. Answers and outputs should speak the
caller's language, so each object keeps the name it was given. The rules:

- a decimal string ("3") is the tracker id itself, and its name is its decimal form;
- any other non-empty string is a name: the first time it is seen it gets the next free tracker
  id, later it means that object again (until it is removed, or a reset forgets everything);
- each object has a label (its value in the label image), 1..capacity, fixed while it lives and
  reused after it is removed.

A decimal string always means the tracker id, even when that object was given a name: "1" and
"obj1" are the same object if obj1 has tracker id 1 (the tracked_objects topic shows both).
"""

from __future__ import annotations

from collections.abc import Sequence

from sam2_ros.ros.interfaces.messages import CallerId, PromptError


class ObjectRegistry:
    """Tracker ids, their callers' names and their labels, as the callbacks see them (ahead of the tracker).

    Why ahead: services answer at once with the ids and labels the objects will have, before the
    inference thread applies their prompts. Not thread-safe: the core calls it under its lock.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.labels: dict[int, int] = {}  # tracker id -> label
        self._names: dict[int, str] = {}  # tracker id -> name, for objects a caller named with a non-decimal string
        self._ids: dict[str, int] = {}  # the reverse
        self._next_id = 1

    # ------------------------------------------------------------------ lookups
    def name(self, obj_id: int) -> str:
        """How callers know ``obj_id``: its name, or its decimal form."""
        return self._names.get(obj_id, str(obj_id))

    def known(self, caller_id: CallerId) -> int | None:
        """The tracker id of the live object ``caller_id`` names, or None."""
        obj_id = caller_id if isinstance(caller_id, int) else self._ids.get(caller_id)
        return obj_id if obj_id in self.labels else None

    def resolve(self, caller_ids: Sequence[CallerId]) -> list[int]:
        """Tracker ids for ``caller_ids``, giving each new name the next free id; changes nothing.

        Call ``add`` with the same names to keep them.
        """
        taken = set(self.labels) | {c for c in caller_ids if isinstance(c, int)}
        fresh: dict[str, int] = {}
        out = []
        next_id = self._next_id
        for caller_id in caller_ids:
            if isinstance(caller_id, int):
                out.append(caller_id)
            elif caller_id in self._ids:
                out.append(self._ids[caller_id])
            else:
                if caller_id not in fresh:
                    while next_id in taken:
                        next_id += 1
                    fresh[caller_id] = next_id
                    taken.add(next_id)
                out.append(fresh[caller_id])
        return out

    def snapshot(self) -> list[tuple[int, int]]:
        """(tracker id, label) of every object, by tracker id."""
        return sorted(self.labels.items())

    def named_snapshot(self) -> list[tuple[str, int]]:
        """(caller's id, label) of every object, by tracker id: what the services answer."""
        return [(self.name(obj_id), label) for obj_id, label in self.snapshot()]

    # ------------------------------------------------------------------ changes
    def new_id(self) -> int:
        """A tracker id never handed out since the last reset (for taps and unnamed detections)."""
        obj_id = max(self._next_id, max(self.labels, default=0) + 1)
        self._next_id = obj_id + 1
        return obj_id

    def add(self, obj_id: int, caller_id: CallerId | None = None) -> int:
        """The label of ``obj_id``, assigning the lowest free one to a new object; a name is kept with it."""
        if obj_id not in self.labels:
            free = sorted(set(range(1, self.capacity + 1)) - set(self.labels.values()))
            if not free:
                raise PromptError(
                    f"cannot start object {caller_id if caller_id is not None else obj_id}: already "
                    f"tracking {self.capacity} objects (max_objects); remove one first"
                )
            self.labels[obj_id] = free[0]
        if isinstance(caller_id, str) and obj_id not in self._names:
            self._names[obj_id], self._ids[caller_id] = caller_id, obj_id
            self._next_id = max(self._next_id, obj_id + 1)
        return self.labels[obj_id]

    def remove(self, obj_id: int) -> None:
        """Forget ``obj_id``, its label and its name (the name may later be given to a new object)."""
        self.labels.pop(obj_id, None)
        name = self._names.pop(obj_id, None)
        if name is not None:
            del self._ids[name]

    def clear(self) -> None:
        self.labels.clear()
        self._names.clear()
        self._ids.clear()
        self._next_id = 1
