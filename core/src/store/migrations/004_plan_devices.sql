-- Which devices each plan enrolls (its `devices` keys), kept with the catalog so a relay
-- finds the plans of a device that joins without loading any document.
CREATE TABLE plan_devices (
    plan_id    TEXT NOT NULL REFERENCES plans (plan_id) ON DELETE CASCADE,
    device_id  TEXT NOT NULL,
    PRIMARY KEY (plan_id, device_id)
);

CREATE INDEX plan_devices_by_device ON plan_devices (device_id);
