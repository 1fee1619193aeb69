package org.alliance.sample

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.BackHandler
import androidx.activity.compose.setContent
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Text
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.launch
import org.alliance.Alliance
import org.alliance.AllianceException
import org.alliance.Identity
import java.io.File

/** Opens one Alliance for the app's lifetime and shows setup, the plan list or one plan. */
class MainActivity : ComponentActivity() {
    private var alliance by mutableStateOf<Alliance?>(null)
    private var identity by mutableStateOf<Identity?>(null)
    private var failure by mutableStateOf<String?>(null)

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        lifecycleScope.launch {
            try {
                // The path and the database key come from the app, never from the core.
                val opened = Alliance.open(
                    path = File(filesDir, "alliance.db").path,
                    key = DatabaseKey.load(this@MainActivity),
                )
                identity = opened.identity()
                alliance = opened
            } catch (e: AllianceException) {
                failure = "The plans on this phone could not be opened."
            }
        }
        setContent {
            MaterialTheme {
                var openPlanId by rememberSaveable { mutableStateOf<String?>(null) }
                val current = alliance
                val me = identity
                when {
                    failure != null -> Text(failure.orEmpty())
                    current == null -> Text("Opening…")
                    me == null -> SetupScreen(current, onReady = { identity = it })
                    openPlanId == null -> PlanListScreen(current, me, onOpen = { openPlanId = it })
                    else -> {
                        BackHandler { openPlanId = null }
                        PlanScreen(current, me, openPlanId!!)
                    }
                }
            }
        }
    }

    override fun onDestroy() {
        alliance?.close()
        super.onDestroy()
    }
}
