package org.alliance

/**
 * What the tests need and no app may do, through the library's test hooks: exported only when
 * alliance-ffi is built with its `test-hooks` feature, as scripts/test-bindings.sh does. The one
 * place the tests reach a generated name (through the wrapper's `internal` handle); every test
 * still goes through the wrapper for what it checks.
 */

/** [Alliance.editGoal] without the role check, as a build with other rules would write it: peers refuse it. */
internal suspend fun Alliance.editGoalUnchecked(planId: String, goalId: String, edit: GoalEdit) =
    translate { ffi.testEditGoalUnchecked(planId, goalId, edit) }
