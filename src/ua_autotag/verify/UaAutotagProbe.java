// `ua-autotag verify` for Java: an unmodified pgjdbc program (no ApplicationName of its
// own; the hook in JAVA_TOOL_OPTIONS supplies it). Run in source-launch mode:
//   java -cp postgresql.jar UaAutotagProbe.java jdbc:postgresql://host:port/db
// User from UA_AUTOTAG_PROBE_USER, password from PGPASSWORD (never on the command line).
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

public class UaAutotagProbe {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        String user = System.getenv("UA_AUTOTAG_PROBE_USER");
        String password = System.getenv("PGPASSWORD");
        if (user != null) props.setProperty("user", user);
        if (password != null) props.setProperty("password", password);
        try (Connection c = DriverManager.getConnection(args[0], props);
             Statement s = c.createStatement();
             ResultSet r = s.executeQuery(
                 "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")) {
            r.next();
            System.out.println("application_name=" + r.getString(1));
        }
    }
}
