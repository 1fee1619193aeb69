package org.alliance.sample

import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.Card
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Slider
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.produceState
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import kotlinx.coroutines.flow.catch
import kotlinx.coroutines.launch
import org.alliance.Alliance
import org.alliance.AllianceException
import org.alliance.Goal
import org.alliance.Identity
import org.alliance.isAgreed
import org.alliance.NewCheckIn
import org.alliance.PlanSummary
import org.alliance.Role
import java.time.LocalDate
import java.time.ZonedDateTime
import kotlin.math.roundToInt

/** First run: who uses this phone. Shows the device id a counselor enrolls in a plan. */
@Composable
fun SetupScreen(alliance: Alliance, onReady: (Identity) -> Unit) {
    var name by remember { mutableStateOf("") }
    var message by remember { mutableStateOf<String?>(null) }
    val scope = rememberCoroutineScope()
    fun start(role: Role) = scope.launch {
        try {
            onReady(alliance.initIdentity(name, role))
        } catch (e: AllianceException.InvalidInput) {
            message = "Please enter your name."
        } catch (e: AllianceException) {
            message = "That did not work: ${e.message}"
        }
    }
    Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
        OutlinedTextField(value = name, onValueChange = { name = it }, label = { Text("Your name") })
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Button(onClick = { start(Role.CLIENT) }) { Text("I am a client") }
            OutlinedButton(onClick = { start(Role.COUNSELOR) }) { Text("I am a counselor") }
        }
        message?.let { Text(it) }
    }
}

@Composable
fun PlanListScreen(alliance: Alliance, me: Identity, onOpen: (String) -> Unit) {
    val plans by produceState(initialValue = emptyList<PlanSummary>(), alliance) {
        value = try {
            alliance.plans()
        } catch (e: AllianceException) {
            emptyList()
        }
    }
    LazyColumn(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
        item { Text("This phone: ${me.deviceId}") }
        items(plans, key = { it.planId }) { plan ->
            Card(Modifier.fillMaxWidth().clickable { onOpen(plan.planId) }) {
                Column(Modifier.padding(16.dp)) {
                    Text(plan.title)
                    Text("${plan.goalCount} goals" + (plan.reviewOn?.let { " · review $it" } ?: ""))
                }
            }
        }
    }
}

/** One plan, redrawn whenever it changes here or arrives changed from another device. */
@Composable
fun PlanScreen(alliance: Alliance, me: Identity, planId: String) {
    var message by remember { mutableStateOf<String?>(null) }
    val plan by remember(planId) {
        alliance.plan(planId).catch { message = "This plan cannot be shown: ${it.message}" }
    }.collectAsState(initial = null)
    val scope = rememberCoroutineScope()
    val current = plan
    if (current == null) {
        Text(message ?: "Loading…")
        return
    }

    fun act(action: suspend () -> Unit) = scope.launch {
        message = try {
            action()
            null
        } catch (e: AllianceException.NotAllowed) {
            "Your role cannot change that."
        } catch (e: AllianceException) {
            "That did not work: ${e.message}"
        }
    }

    LazyColumn(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(12.dp)) {
        item { Text(current.title) }
        message?.let { item { Text(it) } }
        items(current.goals, key = { it.goalId }) { goal ->
            GoalCard(
                goal = goal,
                mustAgree = me.memberId in goal.agreement.waitingFor,
                onAgree = { act { alliance.agree(planId, goal.goalId) } },
                onCheckIn = { draft -> act { alliance.checkIn(planId, goal.goalId, draft) } },
            )
        }
    }
}

@Composable
fun GoalCard(goal: Goal, mustAgree: Boolean, onAgree: () -> Unit, onCheckIn: (NewCheckIn) -> Unit) {
    Card(Modifier.fillMaxWidth()) {
        Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
            Text("“${goal.clientWords}”")
            when {
                goal.agreement.isAgreed -> Text("Agreed")
                mustAgree -> Button(onClick = onAgree) { Text("Agree") }
                else -> Text("Waiting for agreement")
            }
            CheckInRow(onCheckIn)
        }
    }
}

/** Today's check-in: a GAS level from -2 (much less than expected) to 2 and a short note. */
@Composable
fun CheckInRow(onCheckIn: (NewCheckIn) -> Unit) {
    var level by remember { mutableStateOf(0f) }
    var note by remember { mutableStateOf("") }
    Column {
        Text("Today: ${level.roundToInt()}")
        Slider(value = level, onValueChange = { level = it }, valueRange = -2f..2f, steps = 3)
        OutlinedTextField(value = note, onValueChange = { note = it }, label = { Text("Note") })
        Row(horizontalArrangement = Arrangement.End, modifier = Modifier.fillMaxWidth()) {
            OutlinedButton(onClick = {
                val now = ZonedDateTime.now()
                onCheckIn(
                    NewCheckIn(
                        localDate = LocalDate.now().toString(),
                        tzOffsetMin = now.offset.totalSeconds / 60,
                        gasLevel = level.roundToInt(),
                        note = note,
                    )
                )
                note = ""
            }) { Text("Check in") }
        }
    }
}
